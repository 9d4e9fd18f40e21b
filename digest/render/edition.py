"""The renderer of one edition: compile each content variant once, then personalize cheaply.

``EditionRenderer`` is what the delivery engine and the preview hold::

    renderer = EditionRenderer(settings, comparisons, week=week, archive_url=url)
    variant = renderer.variant_for(subscriber.categories)     # None: nothing for them
    message = variant.message_for(Recipient(id, email, name), message_id=new_message_id(...))

A variant is compiled (Jinja, then MJML with CSS inlining, then the text part) the first time
its key is asked for and cached on the renderer; after that a message costs two HMACs and two
string joins. The renderer is thread-safe: compiles happen under a lock, lookups do not take it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

import jinja2

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.verdicts import CommunityVotes
from digest.content.weeks import IsoWeek
from digest.errors import InputError, NotFoundError
from digest.message import OutgoingMessage
from digest.render import archive, templates
from digest.render.budget import KIB, SIGNATURE_RESERVE, SLOT_RESERVE, VOTER_RESERVE, Fit, fit
from digest.render.compose import MessageContext, Recipient, compose, new_message_id
from digest.render.links import (
    PIXEL_RESERVE,
    TOKEN_RESERVE,
    LinkSlots,
    LinkTarget,
    build_link_slots,
    link_ids,
    link_table,
    open_link,
)
from digest.render.mjml import MjmlCompiler, check_inert, default_compiler, with_title
from digest.render.slots import VOTE_BASE, Slot, SlotTemplate, link_marker, markers
from digest.render.subject import (
    SubjectFields,
    check_settings,
    render_preheader,
    render_subject,
)
from digest.render.text import render_text
from digest.render.variants import category_choices, folded, key_of, select
from digest.render.view import edition_view
from digest.render.votes import VoteSlots, link_maker, vote_slots
from subscribers.tokens import TokenSigner, signer_from_settings

HTML_TEMPLATE = "email/digest.mjml.j2"


@dataclass(frozen=True, slots=True)
class CompiledVariant:
    """One content variant, compiled: subject, the slotted HTML and text, and its source.

    ``mjml`` is the MJML source after Jinja and before MJML (for validation and debugging).
    """

    key: str
    subject: str
    preheader: str
    comparisons: tuple[ComparisonDoc, ...]
    html: SlotTemplate
    text: SlotTemplate
    mjml: str
    context: MessageContext = field(repr=False)
    fit: Fit | None = None  # what the size budget allowed (None: not measured)
    votes: VoteSlots | None = None  # the "Would you ship it?" links (None: without them)
    links: LinkSlots | None = None  # tracked links and pixel (None: tracking is off)

    @property
    def slot_count(self) -> int:
        """How many values a message of this variant fills (fixed, vote and link slots)."""
        return max(
            VOTE_BASE,
            self.votes.slot_count if self.votes is not None else 0,
            self.links.slot_count if self.links is not None else 0,
        )

    def size_report(self) -> str:
        """``"HTML 41.2 KB of a 90 KB budget; all 6 comparisons as full cards"``."""
        return self.fit.report() if self.fit else f"HTML {self.html.size / KIB:.1f} KB"

    def message_for(
        self,
        recipient: Recipient,
        *,
        message_id: str,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> OutgoingMessage:
        """The complete message for ``recipient`` (see ``digest.render.compose``)."""
        return compose(
            self,
            recipient,
            message_id=message_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )

    def new_message_id(self) -> str:
        return new_message_id(self.context.domain)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(doc.slug for doc in self.comparisons)


class EditionRenderer:
    """Renders one edition for every subscriber; see the module docstring.

    ``comparisons`` keep the order given (a week's selection and a frozen edition are in
    publication order); that order is the order of the cards and decides ``{first}``.
    """

    def __init__(
        self,
        settings: Settings,
        comparisons: Sequence[ComparisonDoc],
        *,
        week: IsoWeek,
        archive_url: str,
        edition_id: int | None = None,
        community: Mapping[tuple[str, str], CommunityVotes] | None = None,
        recap: Sequence[ComparisonDoc] = (),
        signer: TokenSigner | None = None,
        environment: jinja2.Environment | None = None,
        compiler: MjmlCompiler | None = None,
    ) -> None:
        if not comparisons:
            raise InputError(f"edition {week} has no comparison to render")
        check_settings(settings)
        self.settings = settings
        self.comparisons = tuple(comparisons)
        self.week = week
        self.archive_url = archive_url
        # Vote links name the edition; a preview of an edition not created yet uses 0 (its
        # links then lead to the "not valid" page, as no edition 0 exists).
        self.edition_id = edition_id or 0
        self.community = dict(community or {})
        self.recap = tuple(recap)
        self.signer = signer or signer_from_settings(settings)
        self.environment = environment or templates.environment()
        self.compiler = compiler or default_compiler
        self.context = MessageContext.of(settings, self.signer)
        # The edition's link table (``digest.render.links``); empty when neither clicks nor
        # opens are tracked.
        self.links = (
            link_table(self.comparisons, settings.base_url)
            if settings.track_clicks or settings.track_opens
            else ()
        )
        self.compiles = 0  # variants compiled by this renderer
        self._variants: dict[tuple[str, bool], CompiledVariant] = {}
        self._keys: dict[frozenset[str], str | None] = {}
        self._lock = threading.Lock()

    def variant_for(
        self, categories: Sequence[str], *, votes: bool = True
    ) -> CompiledVariant | None:
        """The variant for a subscriber following ``categories`` (empty: all), or None when
        none of the edition's comparisons is in those categories (no empty digests).
        ``votes``: the subscriber's choice of vote links (``settings.votes`` off wins)."""
        choice = folded(categories)
        try:
            key = self._keys[choice]
        except KeyError:
            selected = select(self.comparisons, categories)
            key = key_of(selected) if selected else None
            self._keys[choice] = key
        return None if key is None else self.variant_by_key(key, votes=votes)

    def variant_by_key(self, key: str, *, votes: bool = True) -> CompiledVariant:
        """The variant named ``key`` (as stored by the delivery ledger), compiling it if needed;
        with or without vote links (a subscriber may turn them off after the ledger is built)."""
        votes = votes and self.settings.votes
        variant = self._variants.get((key, votes))
        if variant is not None:
            return variant
        for choice in chain([()], category_choices(self.comparisons)):
            selected = select(self.comparisons, choice)
            if selected and key_of(selected) == key:
                return self._compile(key, selected, votes)
        raise NotFoundError(f"edition {self.week} has no content variant {key!r}")

    def archive_html(self) -> str:
        """The web archive copy: every comparison, no personal parts (no vote links)."""
        variant = self.variant_for((), votes=False)
        assert variant is not None  # an edition has at least one comparison
        return archive.archive_html(variant, self.settings)

    @property
    def variants(self) -> tuple[CompiledVariant, ...]:
        """The variants compiled so far."""
        return tuple(self._variants.values())

    def _compile(self, key: str, selected: Sequence[ComparisonDoc], votes: bool) -> CompiledVariant:
        with self._lock:
            existing = self._variants.get((key, votes))
            if existing is not None:
                return existing
            variant = compile_variant(
                self.settings,
                selected,
                key=key,
                week=self.week,
                archive_url=self.archive_url,
                environment=self.environment,
                compiler=self.compiler,
                context=self.context,
                edition_id=self.edition_id,
                positions={doc.slug: index for index, doc in enumerate(self.comparisons)}
                if votes
                else None,
                community=self.community,
                recap=self.recap,
                links=self.links,
                link_positions={doc.slug: index for index, doc in enumerate(self.comparisons)},
            )
            self._variants[key, votes] = variant
            self.compiles += 1
            return variant


def _reserve(index: int) -> int:
    """The most a slot's value adds per occurrence (see ``digest.render.budget``)."""
    if index >= VOTE_BASE:
        return SIGNATURE_RESERVE
    return VOTER_RESERVE if index == Slot.VOTER else SLOT_RESERVE


def size_report(settings: Settings, comparisons: Sequence[ComparisonDoc], *, week: IsoWeek) -> str:
    """What the size budget makes of ``comparisons`` for a reader of every category (the
    largest variant): ``"HTML 41.5 KB of a 90 KB budget; all 6 comparisons as full cards"``."""
    renderer = EditionRenderer(
        settings, comparisons, week=week, archive_url=archive.archive_url(settings, str(week))
    )
    variant = renderer.variant_for(())
    assert variant is not None  # an edition has at least one comparison
    return variant.size_report()


def subject_for(settings: Settings, week: IsoWeek) -> Callable[[Sequence[ComparisonDoc]], str]:
    """How the subject line of ``week``'s edition is written from the comparisons it carries
    (``settings.subject_template``); ``digest.editions.service.open_edition`` stores it."""

    def subject(comparisons: Sequence[ComparisonDoc]) -> str:
        fields = SubjectFields.of(comparisons, week, settings.site_name)
        return render_subject(settings.subject_template, fields)

    return subject


def compile_variant(
    settings: Settings,
    comparisons: Sequence[ComparisonDoc],
    *,
    key: str,
    week: IsoWeek,
    archive_url: str,
    environment: jinja2.Environment,
    compiler: MjmlCompiler,
    context: MessageContext,
    edition_id: int = 0,
    positions: Mapping[str, int] | None = None,
    community: Mapping[tuple[str, str], CommunityVotes] | None = None,
    recap: Sequence[ComparisonDoc] = (),
    links: Sequence[LinkTarget] = (),
    link_positions: Mapping[str, int] | None = None,
) -> CompiledVariant:
    """Jinja → MJML → HTML with slots, and the text part, for exactly ``comparisons``, within
    the size budget (see ``digest.render.budget``). With ``positions`` (each comparison's
    position in the edition ``edition_id``) every card gets vote links. With ``links`` (the
    edition's link table; ``link_positions``, default ``positions`` or the order given) the
    content links are link slots when ``settings.track_clicks``, and the HTML's footer holds
    the open pixel's slot when ``settings.track_opens``."""
    if link_positions is None:
        link_positions = positions or {doc.slug: n for n, doc in enumerate(comparisons)}
    content_links = bool(links) and settings.track_clicks
    pixel = open_link(links) if settings.track_opens else None
    fields = SubjectFields.of(comparisons, week, settings.site_name)
    subject = render_subject(settings.subject_template, fields)
    view = edition_view(
        site_name=settings.site_name,
        week=week,
        subject=subject,
        preheader=render_preheader(settings.preheader_template, fields),
        comparisons=comparisons,
        archive_url=archive_url,
        base_url=settings.base_url,
        postal_address=settings.postal_address,
        slots=markers(),
        vote_links=link_maker(settings.base_url, positions) if positions is not None else None,
        community=community,
        recap=recap,
        link_marker=link_marker if content_links else None,
        links=link_ids(links, link_positions) if content_links else None,
        pixel=link_marker(pixel) if pixel is not None else "",
    )
    link_base = VOTE_BASE + 2 * len(view.votes)
    link_reserve = len(settings.base_url) + 3 + TOKEN_RESERVE
    # The pixel's slot takes the whole image element around its tracked URL.
    pixel_index = -1 if pixel is None else link_base + pixel
    template = environment.get_template(HTML_TEMPLATE)
    built: dict[tuple[int, int], tuple[str, SlotTemplate]] = {}

    def build(full: int, listed: int) -> tuple[str, SlotTemplate]:
        if (full, listed) not in built:
            source = template.render(edition=view.with_budget(full, listed))
            html = with_title(compiler.compile(source), subject)
            built[full, listed] = (source, SlotTemplate.parse(html, link_base=link_base))
        return built[full, listed]

    def measure(full: int, listed: int) -> int:
        slotted = build(full, listed)[1]
        return slotted.size + sum(
            (link_reserve + (PIXEL_RESERVE if index == pixel_index else 0))
            if index >= link_base
            else _reserve(index)
            for _, index in slotted.positions
        )

    fitted = fit(len(comparisons), settings.email_size_budget_kb * KIB, measure)
    source, html = build(fitted.full, fitted.listed)
    check_inert("".join(chunk for chunk in html.chunks if chunk is not None))
    view = view.with_budget(fitted.full, fitted.listed)
    text = SlotTemplate.parse(render_text(environment, view), link_base=link_base)
    votes = None
    if positions is not None and view.votes:
        if text.vote_numbers != html.vote_numbers:
            raise InputError("the text part and the HTML hold different vote links")
        votes = vote_slots(view, html.vote_numbers, positions=positions, edition_id=edition_id)
    link_slots = None
    if html.link_numbers or text.link_numbers:
        link_slots = build_link_slots(
            links,
            numbers=sorted(set(html.link_numbers) | set(text.link_numbers)),
            base=link_base,
            edition_id=edition_id,
            base_url=settings.base_url,
        )
    return CompiledVariant(
        key=key,
        subject=subject,
        preheader=view.preheader,
        comparisons=tuple(comparisons),
        html=html,
        text=text,
        mjml=source,
        context=context,
        fit=fitted,
        votes=votes,
        links=link_slots,
    )
