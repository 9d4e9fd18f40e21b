"""The subject line and the preheader, from ``settings.subject_template`` / ``preheader_template``.

Both are Python ``str.format`` templates over these fields (and only these):

- ``{first}``: the title of the first comparison of the email. The email keeps the order it
  is given, which for a week's selection and a frozen edition is publication order (oldest
  first, slug breaking ties), so ``{first}`` is also the first card;
- ``{more}``: ``", and 5 more verdicts"`` (``", and 1 more verdict"``), or ``""`` when the
  email carries one comparison;
- ``{count}``: the number of comparisons, e.g. ``6``; ``{others}``: the count minus one;
- ``{count_label}``: ``"6 AI tool comparisons"`` or ``"1 AI tool comparison"``;
- ``{titles}``: every comparison title, joined with ``" · "``;
- ``{week}``: the ISO week, ``2026-W47``; ``{week_label}``: ``"Week 47 · 16–22 November 2026"``;
- ``{site_name}``: ``settings.site_name``.

For 2026-W47 the defaults give ``Deskpilot vs Ticketsmith, and 5 more verdicts`` and ``Ship or
skip: the panel's verdicts on 6 AI tool comparisons from the past week``.

Attribute and index lookups (``{first.upper}``, ``{titles[0]}``) and unknown names are refused
with a ``ConfigError`` naming the field; format specs (``{count:>3}``) are allowed.

A subject is a header: every run of whitespace (CR, LF and tabs included) becomes one space,
control characters are dropped, and a subject over ``MAX_SUBJECT`` (78) characters is
shortened by cutting ``{first}`` at a word boundary (the ", and N more" tail survives), then
the whole line if the template itself is that long. The subject is the same for every
subscriber of a variant, and the preview's lint checks it against the same ``MAX_SUBJECT``.
Content of a variant (the subscriber's categories) changes
``{first}`` and the counts, so each variant has its own subject.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.weeks import IsoWeek
from digest.errors import ConfigError
from digest.render.view import week_label

MAX_SUBJECT = 78  # most clients cut a subject after about 78 characters
MAX_PREHEADER = 200
FIELDS = (
    "first",
    "more",
    "count",
    "others",
    "count_label",
    "titles",
    "week",
    "week_label",
    "site_name",
)
_WHITESPACE = re.compile(r"\s+")


def check_template(template: str, setting: str) -> None:
    """Raise ``ConfigError`` unless ``template`` only uses the fields above."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{setting}: invalid template {template!r}: {exc}") from None
    allowed = ", ".join(f"{{{name}}}" for name in FIELDS)
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise ConfigError(
                f"{setting}: unknown field {{{field}}} in {template!r}; use {allowed}"
            )
        if spec and ("{" in spec):
            raise ConfigError(f"{setting}: nested fields are not supported in {template!r}")


def check_settings(settings: Settings) -> None:
    """Check both templates of ``settings`` (raise ``ConfigError`` on the first problem)."""
    check_template(settings.subject_template, "DIGEST_SUBJECT_TEMPLATE")
    check_template(settings.preheader_template, "DIGEST_PREHEADER_TEMPLATE")


def clean_header_text(text: str) -> str:
    """One line of text fit for a header: whitespace runs to one space, controls removed."""
    flat = _WHITESPACE.sub(" ", text)
    if not flat.isprintable():
        flat = "".join(
            " " if unicodedata.category(char) in ("Zl", "Zp") else char
            for char in flat
            if unicodedata.category(char) not in ("Cc", "Cf") or char in "\u200d\u200c"
        )
        flat = _WHITESPACE.sub(" ", flat)
    return flat.strip()


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, ending with ``…``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—·") + "…"


@dataclass(frozen=True, slots=True)
class SubjectFields:
    """The values of the template fields for one set of comparisons."""

    first: str
    count: int
    titles: tuple[str, ...]
    week: IsoWeek
    site_name: str

    @classmethod
    def of(
        cls, comparisons: Sequence[ComparisonDoc], week: IsoWeek, site_name: str
    ) -> SubjectFields:
        if not comparisons:
            raise ValueError("an email needs at least one comparison")
        titles = tuple(clean_header_text(doc.title) for doc in comparisons)
        return cls(titles[0], len(titles), titles, week, clean_header_text(site_name))

    def values(self, first: str | None = None) -> Mapping[str, object]:
        others = self.count - 1
        more = f", and {others} more {'verdict' if others == 1 else 'verdicts'}" if others else ""
        noun = "comparison" if self.count == 1 else "comparisons"
        return {
            "first": self.first if first is None else first,
            "more": more,
            "count": self.count,
            "others": others,
            "count_label": f"{self.count} AI tool {noun}",
            "titles": " · ".join(self.titles),
            "week": str(self.week),
            "week_label": week_label(self.week),
            "site_name": self.site_name,
        }


def _format(template: str, setting: str, values: Mapping[str, object]) -> str:
    check_template(template, setting)
    try:
        return clean_header_text(template.format_map(values))
    except (ValueError, TypeError) as exc:  # a format spec that does not fit the value
        raise ConfigError(f"{setting}: cannot format {template!r}: {exc}") from None


def render_subject(template: str, fields: SubjectFields, limit: int = MAX_SUBJECT) -> str:
    """The subject line: shortened by cutting ``{first}`` first, then the whole line."""
    subject = _format(template, "DIGEST_SUBJECT_TEMPLATE", fields.values())
    if len(subject) <= limit:
        return subject
    excess = len(subject) - limit
    if "{first" in template and len(fields.first) - excess >= 12:
        shorter = shorten(fields.first, len(fields.first) - excess)
        subject = _format(template, "DIGEST_SUBJECT_TEMPLATE", fields.values(first=shorter))
    return shorten(subject, limit)


def render_preheader(template: str, fields: SubjectFields, limit: int = MAX_PREHEADER) -> str:
    """The preheader (the inbox preview line after the subject)."""
    return shorten(_format(template, "DIGEST_PREHEADER_TEMPLATE", fields.values()), limit)
