"""Click tokens: one per link, each readable back, and none survives a change of any part."""

from __future__ import annotations

import pytest

from subscribers.tokens import MAX_LINKS, ClickRef, Purpose, TokenSigner

SIGNER = TokenSigner("click token test secret, long enough for tests")


def test_tokens_read_back_and_any_change_breaks_them() -> None:
    tokens = SIGNER.click_tokens(12, 345, [0, 3, 7])
    assert [SIGNER.read_click(t) for t in tokens] == [
        ClickRef(12, 345, 0),
        ClickRef(12, 345, 3),
        ClickRef(12, 345, 7),
    ]
    assert tokens[1] == SIGNER.make_click(ClickRef(12, 345, 3))
    edition, subscriber, link, signature = tokens[1].split(".")
    for forged in (
        f"{edition}.{subscriber}.4.{signature}",
        f"{edition}.346.{link}.{signature}",
        f"13.{subscriber}.{link}.{signature}",
        f"{edition}.{subscriber}.{link}.{signature[::-1]}",
        f"{edition}.{subscriber}.0{link}.{signature}",
        tokens[1] + "A",
        "",
    ):
        assert SIGNER.read_click(forged) is None, forged
    assert TokenSigner("another secret for the same test suite").read_click(tokens[1]) is None
    # A vote or unsubscribe token is not a click token.
    assert SIGNER.read_click(SIGNER.make(345, Purpose.UNSUBSCRIBE)) is None


def test_links_are_bounded() -> None:
    with pytest.raises(ValueError):
        SIGNER.click_tokens(1, 1, [MAX_LINKS])
    assert SIGNER.read_click(f"1.1.{MAX_LINKS}.AAAAAAAAAAAA") is None
    assert SIGNER.click_tokens(1, 1, []) == []
