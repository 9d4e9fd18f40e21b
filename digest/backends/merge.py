"""Provider calls for providers that merge per-recipient values into one body (SendGrid,
Mailgun): which messages share a call.

A rendered message carries its content variant's compiled templates and its own slot values
(``OutgoingMessage.merged``). Messages that share both templates (the same objects), the sender,
the reply-to, the header names and the metadata keys share a call: the provider gets the
templates once, each slot written as its merge tag, and each recipient's values beside their
address. Filling the tags gives every recipient exactly ``template.fill(values)``, the body
every other backend sends; nothing is recovered from finished bodies.

A message goes in a call of its own, its bodies as they are, when it carries no merge parts
(or a body was replaced after rendering), when the provider's merge syntax occurs in anything
the provider would substitute in (its template's text, its values, subject, display name,
header or metadata values: ``is_safe`` says), or when its values exceed the provider's
per-recipient limit. A call never holds one address twice (providers key per-recipient data
by address), nor more than ``max_call_bytes`` (estimated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from digest.message import BodyTemplate, MergeParts, OutgoingMessage

PER_RECIPIENT_OVERHEAD = 512  # JSON or form syntax, the address, the per-recipient fields


@dataclass(slots=True)
class MergeGroup:
    """Messages (``indexes`` into the batch) sent in one provider call.

    ``parts`` are the shared templates (those of the first message); None means one message
    sent alone with its bodies as they are.
    """

    indexes: list[int]
    parts: MergeParts | None
    size: int = 0
    addresses: set[str] = field(default_factory=set)


def slot_names(members: Sequence[OutgoingMessage]) -> tuple[list[str], list[str]]:
    """The merge names of each slot in the HTML and in the text part of a call: ``hN`` and
    ``tN``, or one ``bN`` for both parts when every member has the same value there in both
    (a vote link's signature, say), so that value travels once per recipient."""
    merges = [parts for m in members if (parts := m.merged) is not None]
    count = len(merges[0].html_values) if merges else 0
    html, text = [], []
    for n in range(count):
        if all(m.html_values[n] == m.text_values[n] for m in merges):
            html.append(f"b{n}")
            text.append(f"b{n}")
        else:
            html.append(f"h{n}")
            text.append(f"t{n}")
    return html, text


def slot_values(message: OutgoingMessage, names: tuple[list[str], list[str]]) -> dict[str, str]:
    """One message's values under the names of ``slot_names``."""
    merge = message.merged
    assert merge is not None  # grouped with others only when it has merge parts
    values = dict(zip(names[0], merge.html_values, strict=True))
    values.update(zip(names[1], merge.text_values, strict=True))
    return values


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def values_size(parts: MergeParts) -> int:
    """Bytes of one recipient's slot values (what providers cap per recipient)."""
    return sum(utf8_size(value) for value in (*parts.html_values, *parts.text_values))


def _personal_texts(message: OutgoingMessage, parts: MergeParts) -> Iterable[str]:
    yield from parts.html_values
    yield from parts.text_values
    yield message.subject
    yield message.to_name
    yield from message.headers.values()
    yield from message.metadata.values()


def group_for_merge(
    messages: Sequence[OutgoingMessage],
    indexes: Sequence[int],
    *,
    is_safe: Callable[[str], bool],
    max_call_bytes: int,
    max_values_bytes: int | None = None,
) -> list[MergeGroup]:
    """Group ``messages[i]`` (``i`` in ``indexes``) into calls, in batch order."""
    groups: list[MergeGroup] = []
    open_groups: dict[tuple[object, ...], list[MergeGroup]] = {}
    safe_templates: dict[int, bool] = {}

    def template_is_safe(template: BodyTemplate) -> bool:
        known = safe_templates.get(id(template))
        if known is None:
            known = safe_templates[id(template)] = all(map(is_safe, template.literals))
        return known

    for index in indexes:
        message = messages[index]
        parts = message.merged
        mergeable = (
            parts is not None
            and template_is_safe(parts.html_template)
            and template_is_safe(parts.text_template)
            and all(map(is_safe, _personal_texts(message, parts)))
            and (max_values_bytes is None or values_size(parts) <= max_values_bytes)
        )
        if parts is None or not mergeable:
            groups.append(MergeGroup([index], None))
            continue
        key = (
            id(parts.html_template),
            id(parts.text_template),
            message.sender,
            message.reply_to,
            tuple(message.headers),
            tuple(sorted(message.metadata)),
        )
        own = values_size(parts) + PER_RECIPIENT_OVERHEAD
        own += sum(utf8_size(value) for value in message.headers.values())
        own += sum(utf8_size(value) for value in message.metadata.values())
        address = message.to.lower()
        candidates = open_groups.setdefault(key, [])
        group = next(
            (
                g
                for g in candidates
                if address not in g.addresses and g.size + own <= max_call_bytes
            ),
            None,
        )
        if group is None:
            shared = utf8_size("".join(parts.html_template.literals))
            shared += utf8_size("".join(parts.text_template.literals))
            group = MergeGroup([], parts, size=shared)
            candidates.append(group)
            groups.append(group)
        group.indexes.append(index)
        group.addresses.add(address)
        group.size += own
    return groups
