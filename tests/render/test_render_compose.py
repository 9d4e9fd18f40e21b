"""compose: the complete message, its list headers, signed links and Message-ID."""

from __future__ import annotations

import email
import email.header
import email.policy
import re
from email.message import EmailMessage

import pytest
from render_support import ARCHIVE, READER, TEST_SECRET, W47, RendererFactory, make_settings

from digest.backends.mime import build_mime, to_bytes
from digest.content.document import ComparisonDoc
from digest.errors import ConfigError
from digest.render.archive import archive_text
from digest.render.compose import (
    Recipient,
    greeting_for,
    list_id_header,
    mailto_uri,
    new_message_id,
)
from digest.render.edition import CompiledVariant, EditionRenderer
from subscribers.tokens import Purpose, TokenSigner, preferences_url, unsubscribe_url


def _variant(
    make_renderer: RendererFactory, docs: list[ComparisonDoc], **kw: object
) -> CompiledVariant:
    variant = make_renderer(docs, **kw).variant_for([])
    assert variant is not None
    return variant


def _wire(variant: CompiledVariant, recipient: Recipient = READER) -> tuple[bytes, EmailMessage]:
    message = variant.message_for(recipient, message_id=variant.new_message_id())
    raw = to_bytes(build_mime(message))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def test_exactly_one_list_unsubscribe_with_the_recipients_own_token(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    raw, parsed = _wire(_variant(make_renderer, w47_docs))
    assert len(re.findall(rb"^List-Unsubscribe:", raw, re.MULTILINE | re.IGNORECASE)) == 1
    assert len(re.findall(rb"^List-Unsubscribe-Post:", raw, re.MULTILINE | re.IGNORECASE)) == 1
    value = str(parsed["List-Unsubscribe"])
    match = re.fullmatch(r"<https://verdicts\.example\.com/unsubscribe/([^>]+)>", value)
    assert match, value
    signer = TokenSigner(TEST_SECRET)
    assert signer.read(match[1], Purpose.UNSUBSCRIBE) == READER.subscriber_id
    assert signer.read(match[1], Purpose.PREFERENCES) is None
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == '"Weekly AI Tool Verdicts" <weekly.verdicts.example.com>'


def test_links_in_the_body_are_the_recipients(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = _variant(make_renderer, w47_docs)
    message = variant.message_for(READER, message_id="<a@verdicts.example.com>")
    other = variant.message_for(
        Recipient(7, "other@example.org", ""), message_id="<b@verdicts.example.com>"
    )
    signer = TokenSigner(TEST_SECRET)
    unsubscribe = message.headers["List-Unsubscribe"].strip("<>")
    preferences = re.search(r"https://verdicts\.example\.com/preferences/[^\s\"<]+", message.text)
    assert preferences is not None
    assert signer.read(preferences[0].rsplit("/", 1)[1], Purpose.PREFERENCES) == 42
    settings = make_settings()
    assert unsubscribe == unsubscribe_url(settings, signer, 42)
    assert preferences[0] == preferences_url(settings, signer, 42)
    for url in (unsubscribe, preferences[0]):
        assert f'href="{url}"' in message.html
        assert f"\n{url}\n" in message.text
        assert url not in other.html and url not in other.text
    assert "Hi Zo&#235;," in message.html
    assert "Hi Zoë," in message.text
    assert "Hi there," in other.text
    assert f'href="{ARCHIVE}"' in message.html and ARCHIVE in message.text
    # The text part ends with the links; nothing but the footer follows them.
    assert message.text.index(unsubscribe) > message.text.rindex("Read the full comparison")


def test_headers_from_settings(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    settings = make_settings(
        reply_to="Editors <editors@verdicts.example.com>",
        unsubscribe_mailto="unsubscribe@verdicts.example.com",
    )
    variant = _variant(make_renderer, w47_docs, settings=settings)
    raw, parsed = _wire(variant)
    assert parsed["From"] == "Weekly AI Tool Verdicts <digest@verdicts.example.com>"
    assert parsed["To"] == "Zoë Fontaine <zoe@example.com>"
    assert parsed["Reply-To"] == "Editors <editors@verdicts.example.com>"
    assert parsed["Subject"] == "Deskpilot vs Ticketsmith, and 5 more verdicts"
    assert re.fullmatch(r"<[0-9a-f]{32}@verdicts\.example\.com>", parsed["Message-ID"])
    value = " ".join(str(parsed["List-Unsubscribe"]).split())
    assert re.fullmatch(
        r"<https://verdicts\.example\.com/unsubscribe/[^>]+>, "
        r"<mailto:unsubscribe@verdicts\.example\.com>",
        value,
    ), value
    assert len(re.findall(rb"^List-Unsubscribe:", raw, re.MULTILINE)) == 1
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_message_id_is_the_callers(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = _variant(make_renderer, w47_docs)
    message = variant.message_for(READER, message_id="<ledger-17@verdicts.example.com>")
    assert message.message_id == "<ledger-17@verdicts.example.com>"
    ids = {new_message_id(make_settings()) for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"<[0-9a-f]{32}@verdicts\.example\.com>", mid) for mid in ids)
    assert new_message_id("example.net").endswith("@example.net>")


def test_recipient_names_are_cleaned_for_headers_and_greeting(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = _variant(make_renderer, w47_docs)
    message = variant.message_for(
        Recipient(3, "ada@example.com", "Ada\r\nBcc: evil@example.com"),
        message_id="<n@verdicts.example.com>",
    )
    assert message.to_name == "Ada Bcc: evil@example.com"
    assert "Hi Ada," in message.text
    parsed = email.message_from_bytes(to_bytes(build_mime(message)), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert greeting_for("") == "Hi there,"
    assert greeting_for("  ") == "Hi there,"
    assert greeting_for("Lindqvist, Astrid") == "Hi Astrid,"
    assert greeting_for("Ops Team", first_name="Operations") == "Hi Operations,"


def test_list_id_phrase_is_quoted_or_encoded() -> None:
    assert list_id_header('Say "hi" \\ there', "weekly.example.com") == (
        '"Say \\"hi\\" \\\\ there" <weekly.example.com>'
    )
    encoded = list_id_header("Zürich Verdicts", "weekly.example.com")
    assert encoded.isascii() and encoded.endswith(" <weekly.example.com>")
    phrase = encoded.removesuffix(" <weekly.example.com>")
    decoded = "".join(
        part.decode(charset or "ascii") if isinstance(part, bytes) else part
        for part, charset in email.header.decode_header(phrase)
    )
    assert decoded == "Zürich Verdicts"
    assert list_id_header("", "weekly.example.com") == "<weekly.example.com>"


def test_non_ascii_site_name_reaches_the_wire_as_one_list_id(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = _variant(make_renderer, w47_docs, settings=make_settings(site_name="Zürich Verdicts"))
    raw, parsed = _wire(variant)
    assert len(re.findall(rb"^List-Id:", raw, re.MULTILINE)) == 1
    assert parsed["List-Id"].endswith("<weekly.verdicts.example.com>")


def test_mailto_setting_forms() -> None:
    assert mailto_uri("unsub@example.com") == "mailto:unsub@example.com"
    assert mailto_uri("mailto:unsub@example.com?subject=stop") == (
        "mailto:unsub@example.com?subject=stop"
    )
    for bad in ("not an address", "a@b.example>, <https://evil", "x@y\r\nBcc: z@w"):
        with pytest.raises(ConfigError):
            mailto_uri(bad)


def test_bad_mailto_setting_is_refused_when_the_renderer_is_built(
    w47_docs: list[ComparisonDoc],
) -> None:
    with pytest.raises(ConfigError, match="UNSUBSCRIBE_MAILTO"):
        EditionRenderer(
            make_settings(unsubscribe_mailto="nope"), w47_docs, week=W47, archive_url=ARCHIVE
        )


def test_archive_copy_has_no_personal_links(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs)
    html = renderer.archive_html()
    assert "/unsubscribe/" not in html and "/preferences/" not in html
    assert 'href="https://verdicts.example.com/preferences"' in html
    assert "Hello," in html
    assert f'href="{ARCHIVE}"' in html
    text = archive_text(renderer.variant_for([], votes=False), renderer.settings)  # type: ignore[arg-type]
    assert "/unsubscribe/" not in text and "Hello," in text
    assert renderer.compiles == 1
