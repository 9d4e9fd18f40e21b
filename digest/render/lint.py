"""Checks of a finished message that catch what hurts delivery or reading, as warnings.

- the HTML part over 102 KB (Gmail clips larger messages and hides the footer with the
  unsubscribe link; bytes of the UTF-8 HTML are measured);
- images without an ``alt`` attribute;
- links that are not absolute ``https://`` URLs (``mailto:`` is fine), including the
  ``List-Unsubscribe`` URL: an ``http://localhost`` base URL in development shows up here;
- a missing plain-text part;
- a subject over 78 characters (most clients cut it).

The preview prints these; nothing here blocks a send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from digest.message import OutgoingMessage
from digest.render.subject import MAX_SUBJECT

GMAIL_CLIP_BYTES = 102 * 1024
_BRACKETED = re.compile(r"<([^>]*)>")


@dataclass(frozen=True, slots=True)
class LintWarning:
    """One finding: a short code and a sentence for the editor."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href") is not None:
            self.links.append((values["href"] or "").strip())
        elif tag == "img" and "alt" not in values:  # alt="" is right for decoration
            self.images_without_alt.append(values.get("src") or "")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "relative"


def _link_ok(url: str) -> bool:
    return url.startswith("https://") or url.startswith("mailto:")


def lint_message(message: OutgoingMessage) -> list[LintWarning]:
    """Every warning about ``message``, most important first."""
    warnings: list[LintWarning] = []
    size = len(message.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(
            LintWarning(
                "html-size",
                f"the HTML part is {size / 1024:.1f} KB; Gmail clips messages over "
                f"{GMAIL_CLIP_BYTES // 1024} KB and hides the rest, unsubscribe link included",
            )
        )
    if not message.text.strip():
        warnings.append(LintWarning("no-text-part", "the message has no plain-text part"))
    if len(message.subject) > MAX_SUBJECT:
        warnings.append(
            LintWarning(
                "subject-length",
                f"the subject is {len(message.subject)} characters; "
                f"clients cut it after about {MAX_SUBJECT}",
            )
        )
    collector = _Collector()
    collector.feed(message.html)
    collector.close()
    for src in collector.images_without_alt:
        warnings.append(LintWarning("img-alt", f"image without alt text: {src or '(no src)'}"))
    by_origin: dict[str, list[str]] = {}
    for link in collector.links:
        if not _link_ok(link):
            by_origin.setdefault(_origin(link), []).append(link)
    for origin, links in by_origin.items():
        unique = sorted(set(links))
        example = (unique[0] or "(empty)") + (f" and {len(unique) - 1} more" if unique[1:] else "")
        warnings.append(
            LintWarning("link", f"{len(links)} link(s) not absolute https ({origin}): {example}")
        )
    unsubscribe = message.headers.get("List-Unsubscribe", "")
    for target in _BRACKETED.findall(unsubscribe):
        if not _link_ok(target):
            warnings.append(
                LintWarning(
                    "list-unsubscribe",
                    f"List-Unsubscribe target is not https: {target} "
                    "(one-click unsubscribe needs an https URL)",
                )
            )
    return warnings
