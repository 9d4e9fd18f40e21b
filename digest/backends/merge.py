"""Recover one body template plus per-recipient values from a batch of rendered messages.

Mailgun (recipient variables) and SendGrid (substitutions) send one HTML and one text body to
many recipients, substituting per-recipient values into it. Messages reach the backends fully
rendered, so this module finds the template: in each message it replaces the values known to
be personal (the recipient's address, also percent-encoded, and name, the URLs in its headers
such as List-Unsubscribe, its metadata values, each also HTML-escaped) by placeholders.

Messages whose templates come out identical, with the same sender, header names and metadata
keys, share one call. Every template is rendered back and compared with the original, so a
message that would not come out byte for byte identical is sent alone, never altered. The
worst case is one call per message, which is always correct.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from digest.backends.http import html_variant
from digest.message import OutgoingMessage

_URL_IN_BRACKETS = re.compile(r"<([^<>\s]+)>")
MIN_VALUE_LENGTH = 3  # shorter values ("Al") match too much text by accident


@dataclass(frozen=True, slots=True)
class Placeholders:
    """How a provider writes a placeholder for ``key`` and how it finds them in a body."""

    tag: Callable[[str], str]
    pattern: re.Pattern[str]  # group 1 is the key

    def render(self, template: str, values: dict[str, str]) -> str:
        """The body a recipient with ``values`` receives (one pass, like the providers)."""
        return self.pattern.sub(lambda match: values.get(match[1], match[0]), template)


@dataclass(slots=True)
class MergeGroup:
    """Messages (``indexes`` into the batch) that share one HTML and one text template."""

    indexes: list[int]
    html: str
    text: str
    values: list[dict[str, str]] = field(default_factory=list)  # per index: placeholder values
    addresses: set[str] = field(default_factory=set)
    alone: bool = False


def personal_values(message: OutgoingMessage) -> list[tuple[str, str]]:
    """The (key, value) pairs of ``message`` that a template replaces, longest value first."""
    pairs = [("to", message.to), ("to_q", quote(message.to, safe="")), ("name", message.to_name)]
    urls = [url for value in message.headers.values() for url in _URL_IN_BRACKETS.findall(value)]
    pairs.extend((f"u{n}", url) for n, url in enumerate(urls))
    pairs.extend((f"m{n}", message.metadata[key]) for n, key in enumerate(sorted(message.metadata)))
    escaped = [(f"{key}_h", html_variant(value)) for key, value in pairs]
    pairs.extend((key, value) for key, value in escaped if value not in dict(pairs).values())
    usable = [(key, value) for key, value in pairs if len(value) >= MIN_VALUE_LENGTH]
    return sorted(usable, key=lambda pair: (-len(pair[1]), pair[0]))


def template_of(
    message: OutgoingMessage, placeholders: Placeholders
) -> tuple[str, str, dict[str, str]] | None:
    """``(html, text, values)`` with personal values replaced, or None if it cannot be done
    exactly (the body already contains placeholder syntax, or does not render back)."""
    if placeholders.pattern.search(message.html) or placeholders.pattern.search(message.text):
        return None
    html, text = message.html, message.text
    values: dict[str, str] = {}
    for key, value in personal_values(message):
        if placeholders.pattern.search(value):
            continue
        tag = placeholders.tag(key)
        if value in html or value in text:
            html = html.replace(value, tag)
            text = text.replace(value, tag)
            values[key] = value
    if not values:
        return html, text, values
    if (
        placeholders.render(html, values) != message.html
        or placeholders.render(text, values) != message.text
    ):
        return None
    return html, text, values


def group_for_merge(
    messages: Sequence[OutgoingMessage],
    indexes: Sequence[int],
    placeholders: Placeholders,
    *,
    max_values_bytes: int | None = None,
) -> list[MergeGroup]:
    """Group ``messages[i]`` (``i`` in ``indexes``) by shared template, in batch order.

    A group never holds one address twice (providers key per-recipient data by address).
    ``max_values_bytes`` caps a message's placeholder values (SendGrid allows 10,000 bytes of
    substitutions per personalization); a message over it goes alone.
    """
    groups: list[MergeGroup] = []
    open_groups: dict[tuple[object, ...], list[MergeGroup]] = {}
    for index in indexes:
        message = messages[index]
        found = template_of(message, placeholders)
        if found is not None and max_values_bytes is not None:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in found[2].items())
            if size > max_values_bytes:
                found = None
        if found is None:
            groups.append(MergeGroup([index], message.html, message.text, [{}], alone=True))
            continue
        html, text, values = found
        key = (
            html,
            text,
            message.sender,
            message.reply_to,
            tuple(message.headers),
            tuple(sorted(message.metadata)),
        )
        address = message.to.lower()
        candidates = open_groups.setdefault(key, [])
        group = next((g for g in candidates if address not in g.addresses), None)
        if group is None:
            group = MergeGroup([], html, text)
            candidates.append(group)
            groups.append(group)
        group.indexes.append(index)
        group.values.append(values)
        group.addresses.add(address)
    return groups
