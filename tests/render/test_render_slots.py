"""Slots: markers survive compilation, split once, fill with one join, cannot be forged."""

from __future__ import annotations

import pytest

from digest.render.slots import Slot, SlotError, SlotTemplate, marker, markers


def test_parse_and_fill() -> None:
    m = markers()
    compiled = (
        f"<p>{m.greeting}</p><a href='{m.unsubscribe_url}'>u</a>"
        f"<a href='{m.preferences_url}'>p</a>{m.greeting}"
    )
    template = SlotTemplate.parse(compiled)
    assert template.fill(["Hi Ada,", "U", "P"]) == (
        "<p>Hi Ada,</p><a href='U'>u</a><a href='P'>p</a>Hi Ada,"
    )
    assert template.fill_named(
        {Slot.GREETING: "G", Slot.UNSUBSCRIBE_URL: "1", Slot.PREFERENCES_URL: "2"}
    ).startswith("<p>G</p>")
    assert template.size == len("<p></p><a href=''>u</a><a href=''>p</a>")


def test_a_missing_slot_is_refused() -> None:
    with pytest.raises(SlotError, match="preferences_url"):
        SlotTemplate.parse(f"{marker(Slot.GREETING)} {marker(Slot.UNSUBSCRIBE_URL)}")


def test_markers_of_another_nonce_are_plain_text() -> None:
    forged = marker(Slot.GREETING, nonce="0" * 32)
    m = markers()
    template = SlotTemplate.parse(f"{forged}|{m.greeting}|{m.unsubscribe_url}|{m.preferences_url}")
    assert template.fill(["G", "U", "P"]) == f"{forged}|G|U|P"


def test_markers_need_no_escaping() -> None:
    for value in (markers().greeting, markers().unsubscribe_url, markers().preferences_url):
        assert value.isascii() and value.isalnum()
