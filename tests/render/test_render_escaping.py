"""Hostile but valid content is escaped everywhere and never interpreted.

HTML and ``<script>`` in names, Jinja syntax in reviews, MJML tags in descriptions and
summaries, right-to-left text, very long paragraphs, ampersands, and line breaks in a title
come out as text in the HTML part, the plain-text part and the MJML source, and never reach a
header as a line break.
"""

from __future__ import annotations

import email
import email.policy
import re

from render_support import READER, RendererFactory, comparison_data, parse_html, visible_text

from digest.backends.mime import build_mime, to_bytes
from digest.content.document import ComparisonDoc
from digest.content.validate import validate_comparison
from digest.message import OutgoingMessage
from digest.render import slots
from digest.render.compose import Recipient
from digest.render.edition import CompiledVariant

LONG = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 160).strip()
RTL = "مرحبا بالعالم، هذه أداة رائعة"
REVIEW = "{{ 7*7 }} {% raw %}x{% endraw %} <script>alert('hi')</script> " + LONG
HOSTILE_TITLE = '<script>alert("title")</script> & {{ 7*7 }}\r\nBcc: victim@example.com'

# Tags the digest template itself produces; anything else in the HTML came from content.
TEMPLATE_TAGS = {
    "html", "head", "title", "meta", "style", "body", "div", "table", "tbody", "tr", "td",
    "p", "a", "b", "span", "br", "h1", "h2", "h3",
}  # fmt: skip


def hostile_doc() -> ComparisonDoc:
    data = comparison_data(
        slug="hostile-vs-rtl",
        title=HOSTILE_TITLE,
        summary="</mj-text></mj-column></mj-section><mj-raw><script>alert(1)</script></mj-raw>",
        url="https://verdicts.example.com/compare/hostile?a=1&b='x'",
    )
    data["tools"][0].update(
        name='<img src=x onerror="alert(1)">Alpha',
        category="Developer Tools <i>",
        tagline="Saved replies with {{first_name}} merge tags & <b>rich</b> snippets",
        description='<mj-text>desc</mj-text></mj-column>{% if plan == "pro" %}x{% endif %}',
        pricing='{% include "/etc/passwd" %} <mj-include path="/etc/passwd" />',
        entry_price="<mj-button>",
        url="https://verdicts.example.com/tools/alpha?q='x'",
    )
    data["tools"][1].update(name=f"{RTL} Beta", tagline=RTL)
    data["reviews"] = [
        {
            "persona": "<b>Builder</b>",
            "tool": "alpha",
            "score": 80,
            "verdict": "ship",
            "text": REVIEW,
        },
        {"persona": "Skeptic", "tool": "beta", "score": 40, "verdict": "skip", "text": RTL},
    ]
    return validate_comparison(data, "hostile")


def _render(
    make_renderer: RendererFactory, name: str = "Zoë Fontaine", *, tracked: bool = True
) -> tuple[CompiledVariant, OutgoingMessage]:
    renderer = make_renderer([hostile_doc()])
    variant = renderer.variant_for([])
    assert variant is not None
    recipient = Recipient(READER.subscriber_id, READER.email, name, track_clicks=tracked)
    return variant, variant.message_for(recipient, message_id="<hostile@verdicts.example.com>")


def test_html_has_only_template_tags_and_content_as_text(make_renderer: RendererFactory) -> None:
    _variant, message = _render(make_renderer)
    parsed = parse_html(message.html)
    assert set(parsed.tags) <= TEMPLATE_TAGS, set(parsed.tags) - TEMPLATE_TAGS
    assert not re.search(r"<\s*script", message.html, re.IGNORECASE)
    assert not re.search(r"<\s*/?\s*mj-", message.html, re.IGNORECASE)
    assert not re.search(r"<\s*img", message.html, re.IGNORECASE)
    text = visible_text(message.html)
    assert '<script>alert("title")</script> & {{ 7*7 }}' in text
    assert "<script>alert('hi')</script>" in text
    assert '<img src=x onerror="alert(1)">Alpha' in text
    assert "</mj-text></mj-column></mj-section><mj-raw><script>alert(1)</script></mj-raw>" in text
    assert '<mj-button> · {% include "/etc/passwd" %} <mj-include path="/etc/passwd" />' in text
    assert "<b>Builder</b>" in text


def test_template_syntax_in_content_is_never_evaluated(make_renderer: RendererFactory) -> None:
    variant, message = _render(make_renderer, name="{{ 7*7 }} {% if 1 %}yes{% endif %}")
    for part in (message.html, message.text, variant.mjml):
        assert "{{ 7*7 }}" in part
        assert "{% raw %}x{% endraw %}" in part
    assert "49" not in visible_text(message.html)
    assert "49" not in message.text
    # The greeting takes the first word: template syntax, shown as text.
    assert "Hi {{," in message.text
    assert "Hi {{," in visible_text(message.html)


def test_mjml_source_carries_content_escaped(make_renderer: RendererFactory) -> None:
    variant, _message = _render(make_renderer)
    assert "<mj-raw><script>" not in variant.mjml
    assert "&lt;/mj-text&gt;&lt;/mj-column&gt;" in variant.mjml
    assert "&lt;mj-button&gt;" in variant.mjml
    assert "<script>" not in variant.mjml


def test_urls_cannot_leave_their_attribute(make_renderer: RendererFactory) -> None:
    _variant, message = _render(make_renderer, tracked=False)
    hrefs = parse_html(message.html).hrefs
    assert "https://verdicts.example.com/compare/hostile?a=1&b=%27x%27" in hrefs
    assert all(not set(href) & set("\"'<> ") for href in hrefs)
    _variant, tracked = _render(make_renderer)
    tracked_hrefs = parse_html(tracked.html).hrefs
    assert not any("hostile" in href for href in tracked_hrefs)
    assert all(not set(href) & set("\"'<> ") for href in tracked_hrefs)


def test_right_to_left_text_is_kept_and_isolated(make_renderer: RendererFactory) -> None:
    _variant, message = _render(make_renderer)
    assert RTL in visible_text(message.html)
    assert RTL in message.text
    assert 'dir="auto"' in message.html


def test_long_review_is_quoted_in_whole_sentences(make_renderer: RendererFactory) -> None:
    _variant, message = _render(make_renderer)
    assert LONG not in message.text
    quote = next(
        line for line in visible_text(message.html).split("“") if line.startswith("{{ 7*7 }}")
    )
    excerpt = quote.split("”")[0]
    assert excerpt.endswith("elit.")  # a sentence end, not a cut mid-sentence
    assert len(excerpt) <= 200
    assert REVIEW.startswith(excerpt)


def test_ampersand_title_is_escaped_once(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc]
) -> None:
    pixelmint = next(doc for doc in all_docs if "pixelmint" in doc.slug)
    renderer = make_renderer([pixelmint])
    variant = renderer.variant_for([])
    assert variant is not None
    message = variant.message_for(READER, message_id="<amp@verdicts.example.com>")
    assert "Pixelmint vs Cut &amp; Caption" in message.html
    assert "&amp;amp;" not in message.html
    assert "Pixelmint vs Cut & Caption" in message.text
    assert message.subject == "Pixelmint vs Cut & Caption"


def test_line_breaks_in_a_title_never_reach_the_subject_header(
    make_renderer: RendererFactory,
) -> None:
    variant, message = _render(make_renderer)
    assert "\r" not in variant.subject and "\n" not in variant.subject
    assert variant.subject == '<script>alert("title")</script> & {{ 7*7 }} Bcc: victim@example.com'
    parsed = email.message_from_bytes(to_bytes(build_mime(message)), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == variant.subject


def test_no_slot_marker_survives_personalization(make_renderer: RendererFactory) -> None:
    variant, message = _render(make_renderer)
    nonce = slots.markers().greeting.split("x")[1]
    assert nonce not in message.html
    assert nonce not in message.text
    assert nonce in variant.mjml  # the source has the markers; the messages never do
