"""Recovering one template from a batch of rendered messages (Mailgun, SendGrid)."""

from __future__ import annotations

import re

from backend_fakes import build_batch, build_message

from digest.backends.merge import Placeholders, group_for_merge, personal_values, template_of
from digest.message import OutgoingMessage

TAGS = Placeholders(tag=lambda key: f"{{{{{key}}}}}", pattern=re.compile(r"\{\{([a-z0-9_]+)\}\}"))


def test_batch_of_one_edition_shares_one_template() -> None:
    batch = build_batch(5)
    groups = group_for_merge(batch, range(5), TAGS)
    assert len(groups) == 1
    group = groups[0]
    assert group.indexes == [0, 1, 2, 3, 4]
    assert "tok0000" not in group.html and "Reader 3" not in group.text
    for index, values in zip(group.indexes, group.values, strict=True):
        assert TAGS.render(group.html, values) == batch[index].html
        assert TAGS.render(group.text, values) == batch[index].text


def test_url_encoded_address_and_escaped_url_are_recognised() -> None:
    def message(n: int) -> OutgoingMessage:
        return build_message(
            n,
            html=f'<a href="https://x.example/p?e=reader{n}%40example.org&amp;n=1">prefs</a>',
            text=f"https://x.example/p?e=reader{n}%40example.org&n=1",
        )

    batch = [message(n) for n in (1, 2)]
    groups = group_for_merge(batch, [0, 1], TAGS)
    assert len(groups) == 1
    assert "{{to_q}}" in groups[0].html


def test_messages_differing_beyond_personal_values_are_split() -> None:
    batch = [build_message(1), build_message(2, html="<p>other</p>"), build_message(3)]
    groups = group_for_merge(batch, [0, 1, 2], TAGS)
    assert [g.indexes for g in groups] == [[0, 2], [1]]


def test_one_address_never_twice_in_a_group() -> None:
    batch = [build_message(1), build_message(1), build_message(2)]
    groups = group_for_merge(batch, [0, 1, 2], TAGS)
    assert [g.indexes for g in groups] == [[0, 2], [1]]


def test_placeholder_syntax_in_the_body_sends_the_message_alone() -> None:
    odd = build_message(2, text="Literally {{to}} here")
    groups = group_for_merge([build_message(1), odd], [0, 1], TAGS)
    alone = [g for g in groups if g.alone]
    assert [g.indexes for g in alone] == [[1]]
    assert alone[0].text == odd.text
    assert alone[0].values == [{}]
    assert template_of(odd, TAGS) is None


def test_value_size_cap_sends_the_message_alone() -> None:
    groups = group_for_merge(build_batch(2), [0, 1], TAGS, max_values_bytes=10)
    assert all(g.alone for g in groups)
    assert len(groups) == 2


def test_short_values_are_not_replaced() -> None:
    message = build_message(1, to_name="Al", html="<p>Al likes Alternatives</p>")
    assert all(value != "Al" for _, value in personal_values(message))
    found = template_of(message, TAGS)
    assert found is not None
    assert found[0] == message.html


def test_value_that_would_not_render_back_exactly_is_refused() -> None:
    # The name is a substring of the placeholder written for a longer value.
    message = build_message(1, to_name="to_q}", html="<p>reader1%40example.org to_q}</p>")
    found = template_of(message, TAGS)
    assert found is None or TAGS.render(found[0], found[2]) == message.html
