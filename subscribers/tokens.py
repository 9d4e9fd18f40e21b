"""Signed, stateless tokens for the links in every email: confirm, unsubscribe, preferences, vote.

A token is ``{subscriber_id}.{signature}`` (confirm tokens: ``{id}.{day}.{signature}``, where
``day`` is the UTC day of issue and makes them expire). The signature is HMAC-SHA256 under a
key derived from the secret for each purpose, so a token made for one purpose is useless for
another, and checking a token needs no database lookup. Rotating ``secret_key`` invalidates
every link ever sent.

The renderer makes two tokens per recipient for 100,000 recipients, so signing is tuned: the
HMAC inner and outer hash states are computed once per purpose and copied per token (the
classic precomputation of RFC 2104; a test checks it against ``hmac.new``).

A vote token signs everything a vote needs: ``{subscriber}.{edition}.{comparison}.{tool}.
{s|k}.{signature}`` (``VoteRef``), where ``comparison`` is the card's position in the edition
and ``tool`` the tool's position in the comparison (editions are frozen, so positions are
stable and short). A message carries two per tool of every card, so their signatures come
from one keyed SHAKE256 stream per (subscriber, edition): SHAKE256 of the vote purpose's key
followed by ``{subscriber}.{edition}`` (a sponge has no length extension, so a secret prefix
makes it a PRF, as KMAC does); the signature of (comparison, tool, choice) is its 9-byte slot
at ``vote_slot(…) × 9``. One hash call signs every link of a message, and a link whose
comparison, tool or choice is changed points at another slot, so its signature fails.
Positions are bounded (fewer than 100 cards, at most 4 tools, as the content schema allows), so
a token cannot make the server hash much. A vote link expires with its edition's age, which
the edition checks (``digest.editions.votes``).

A tracked link's token is ``{edition_id}.{subscriber_id}.{link}.{signature}`` (``ClickRef``):
``link`` indexes the edition's frozen link table, so the token names a target without carrying
it. Its signatures come from a keyed SHAKE256 stream per (edition, subscriber), as vote
signatures do, under the click key: the signature of link ``n`` is the stream's 9-byte slot
``n`` (links are bounded by ``MAX_LINKS``). Click tokens do not expire (an old email's links
keep working).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from digest.config import Settings

SIGNATURE_LENGTH = 32  # base64url characters = 24 bytes = 192 bits of the HMAC-SHA256
CONFIRM_MAX_AGE_DAYS = 7
_VOTE_SIGNATURE_BYTES = 9  # 12 base64url characters, 72 bits: votes are rate-limited and cheap
_VOTE_MAX_CARDS = 100  # comparison positions 0-99
_VOTE_MAX_TOOLS = 4  # tool positions 0-3 (a comparison has 2-4 tools)
_CHOICE_CODES = {"ship": "s", "skip": "k"}
_CHOICES = {code: choice for choice, code in _CHOICE_CODES.items()}
_MAX_ID_DIGITS = 19  # beyond a 64-bit id: refuse before int() does any work
_BLOCK_SIZE = 64  # SHA-256 block size in bytes
_CLICK_SIGNATURE_BYTES = 9  # 12 base64url characters: a click only redirects and is counted
MAX_LINKS = 1000  # links of one edition's table (cards are fewer than 100, tools at most 4)
_CLICK_KEY_LABEL = b"digest subscriber token: click"


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    VOTE = "vote"


class _Mac:
    """HMAC-SHA256 under one fixed key with its padded key states hashed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def signature(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return urlsafe_b64encode(outer.digest()[:24]).decode("ascii")


def _today() -> int:
    return int(time.time() // 86_400)


Choice = Literal["ship", "skip"]


@dataclass(frozen=True, slots=True)
class VoteRef:
    """What one vote link stands for: this subscriber's ``choice`` on one tool of one comparison,
    offered in one edition."""

    subscriber_id: int
    edition_id: int
    comparison: int  # position of the comparison in the edition
    tool: int  # position of the tool in the comparison
    choice: Choice

    def other(self) -> VoteRef:
        """The same vote with the opposite choice (the "change my vote" button)."""
        return VoteRef(
            self.subscriber_id,
            self.edition_id,
            self.comparison,
            self.tool,
            "skip" if self.choice == "ship" else "ship",
        )


@dataclass(frozen=True, slots=True)
class ClickRef:
    """What one tracked link stands for: link ``link`` of the edition's link table, sent to
    this subscriber."""

    edition_id: int
    subscriber_id: int
    link: int


class TokenSigner:
    """Makes and checks tokens for one secret. Build it once and reuse it; it is thread-safe."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        confirm_max_age_days: int = CONFIRM_MAX_AGE_DAYS,
    ):
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        if not secret_bytes:
            raise ValueError("the token secret must not be empty")
        self.confirm_max_age_days = confirm_max_age_days
        keys = {
            purpose: hmac.new(
                secret_bytes, f"digest subscriber token: {purpose}".encode(), hashlib.sha256
            ).digest()
            for purpose in Purpose
        }
        self._macs = {purpose: _Mac(key) for purpose, key in keys.items()}
        # The vote links' keyed stream, with the key absorbed once and copied per message.
        self._vote_stream = hashlib.shake_256(b"digest vote links\0" + keys[Purpose.VOTE])
        click_key = hmac.new(secret_bytes, _CLICK_KEY_LABEL, hashlib.sha256).digest()
        self._click_stream = hashlib.shake_256(b"digest click links\0" + click_key)

    # -- click tokens --------------------------------------------------------------------------

    def click_signatures(self, edition_id: int, subscriber_id: int, count: int) -> str:
        """The base64url signatures of links 0 to ``count - 1`` for one subscriber, 12
        characters each (one hash call and one encoding for a whole message)."""
        state = self._click_stream.copy()
        state.update(f"{edition_id}.{subscriber_id}".encode("ascii"))
        return urlsafe_b64encode(state.digest(count * _CLICK_SIGNATURE_BYTES)).decode("ascii")

    def click_tokens(self, edition_id: int, subscriber_id: int, links: Sequence[int]) -> list[str]:
        """The token of each of ``links`` for one subscriber: the renderer's per-recipient path
        (one hash call for all of them)."""
        if subscriber_id < 0 or edition_id < 0:
            raise ValueError("ids are not negative")
        if not links:
            return []
        if min(links) < 0 or max(links) >= MAX_LINKS:
            raise ValueError(f"links are numbered 0 to {MAX_LINKS - 1}")
        signatures = self.click_signatures(edition_id, subscriber_id, max(links) + 1)
        tokens = []
        for link in links:
            head, tail = click_token_parts(edition_id, link)
            tokens.append(f"{head}{subscriber_id}{tail}{signatures[link * 12 : link * 12 + 12]}")
        return tokens

    def make_click(self, ref: ClickRef) -> str:
        if min(ref.edition_id, ref.subscriber_id, ref.link) < 0:
            raise ValueError("ids and links are not negative")
        return self.click_tokens(ref.edition_id, ref.subscriber_id, [ref.link])[0]

    def read_click(self, token: str) -> ClickRef | None:
        """The link ``token`` stands for, or None if it is forged, damaged or not a click token.
        Never raises, whatever ``token`` is."""
        try:
            if not isinstance(token, str) or not token.isascii() or len(token) > 80:
                return None
            parts = token.split(".")
            if len(parts) != 4:
                return None
            edition, subscriber, link, _signature = parts
            if not (_is_number(edition, _MAX_ID_DIGITS) and _is_number(subscriber, _MAX_ID_DIGITS)):
                return None
            if not _is_number(link, 4) or int(link) >= MAX_LINKS:
                return None
            expected = self.click_tokens(int(edition), int(subscriber), [int(link)])[0]
            if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
                return None
            return ClickRef(int(edition), int(subscriber), int(link))
        except Exception:
            return None

    # -- vote tokens ---------------------------------------------------------------------------

    def vote_signatures(self, subscriber_id: int, edition_id: int, slots: int) -> str:
        """The base64url signatures of the first ``slots`` slots of a subscriber's vote links
        in one edition, 12 characters each; renderers slice it (``vote_slot``)."""
        stream = self._vote_stream.copy()
        stream.update(vote_token_head(subscriber_id, edition_id).encode("ascii"))
        return urlsafe_b64encode(stream.digest(slots * _VOTE_SIGNATURE_BYTES)).decode("ascii")

    def make_vote(self, ref: VoteRef) -> str:
        """The token of the vote link for ``ref``."""
        if min(ref.subscriber_id, ref.edition_id) < 0:
            raise ValueError("ids are not negative")
        if ref.choice not in _CHOICE_CODES:
            raise ValueError(f"not a choice: {ref.choice!r}")
        slot = vote_slot(ref.comparison, ref.tool, ref.choice)
        signatures = self.vote_signatures(ref.subscriber_id, ref.edition_id, slot + 1)
        ship, skip = vote_token_middles(ref.comparison, ref.tool)
        middle = ship if ref.choice == "ship" else skip
        head = vote_token_head(ref.subscriber_id, ref.edition_id)
        return f"{head}{middle}{signatures[slot * 12 :]}"

    def read_vote(self, token: str) -> VoteRef | None:
        """The vote ``token`` stands for, or None if it is forged, damaged or not a vote token.
        Never raises, whatever ``token`` is."""
        try:
            return self._read_vote(token)
        except Exception:
            return None

    def _read_vote(self, token: str) -> VoteRef | None:
        if not isinstance(token, str) or not token.isascii() or len(token) > 80:
            return None
        parts = token.split(".")
        if len(parts) != 6:
            return None
        subscriber, edition, comparison, tool, code, signature = parts
        if not (_is_number(subscriber, _MAX_ID_DIGITS) and _is_number(edition, _MAX_ID_DIGITS)):
            return None
        if not (_is_number(comparison, 2) and _is_number(tool, 1)) or int(tool) >= _VOTE_MAX_TOOLS:
            return None
        if code not in _CHOICES or len(signature) != 12:
            return None
        choice: Choice = "ship" if _CHOICES[code] == "ship" else "skip"
        slot = vote_slot(int(comparison), int(tool), choice)
        expected = self.vote_signatures(int(subscriber), int(edition), slot + 1)
        if not hmac.compare_digest(expected[slot * 12 :], signature):
            return None
        return VoteRef(int(subscriber), int(edition), int(comparison), int(tool), choice)

    def make(self, subscriber_id: int, purpose: Purpose) -> str:
        """A token for ``subscriber_id`` that only ``read(..., purpose)`` accepts."""
        if subscriber_id < 0:
            raise ValueError("subscriber ids are not negative")
        body = f"{subscriber_id}.{_today()}" if purpose == Purpose.CONFIRM else str(subscriber_id)
        return f"{body}.{self._macs[purpose].signature(body.encode('ascii'))}"

    def maker(self, purpose: Purpose) -> Callable[[int], str]:
        """``make`` with ``purpose`` bound, for loops over many recipients."""
        if purpose == Purpose.CONFIRM:
            return lambda subscriber_id: self.make(subscriber_id, purpose)
        signature = self._macs[purpose].signature

        def make(subscriber_id: int) -> str:
            if subscriber_id < 0:
                raise ValueError("subscriber ids are not negative")
            body = str(subscriber_id)
            return f"{body}.{signature(body.encode('ascii'))}"

        return make

    def read(self, token: str, purpose: Purpose) -> int | None:
        """The subscriber id in ``token``, or None if it is forged, damaged, expired or for
        another purpose. Never raises, whatever ``token`` is."""
        try:
            return self._read(token, purpose)
        except Exception:
            return None

    def _read(self, token: str, purpose: Purpose) -> int | None:
        if not isinstance(token, str) or not token.isascii():
            return None
        body, dot, signature = token.rpartition(".")
        if not dot or len(signature) != SIGNATURE_LENGTH:
            return None
        if purpose == Purpose.CONFIRM:
            id_part, dot, day_part = body.partition(".")
            if not dot or not _is_number(day_part, 6):
                return None
            age = _today() - int(day_part)
            if not 0 <= age <= self.confirm_max_age_days:
                return None
        else:
            id_part = body
        if not _is_number(id_part, _MAX_ID_DIGITS):
            return None
        expected = self._macs[purpose].signature(body.encode("ascii"))
        if not hmac.compare_digest(expected, signature):
            return None
        return int(id_part)


def click_token_parts(edition_id: int, link: int) -> tuple[str, str]:
    """A click token is ``head + subscriber + tail + signature``: its ``(head, tail)``."""
    return f"{edition_id}.", f".{link}."


def vote_token_head(subscriber_id: int, edition_id: int) -> str:
    """How every vote token of one subscriber and edition starts."""
    return f"{subscriber_id}.{edition_id}"


def vote_token_middles(comparison: int, tool: int) -> tuple[str, str]:
    """What follows the head in the Ship and the Skip token of a tool, up to the signature
    (the signatures are slots ``vote_slot(…)`` and the next one of ``vote_signatures``)."""
    return f".{comparison}.{tool}.s.", f".{comparison}.{tool}.k."


def vote_slot(comparison: int, tool: int, choice: str) -> int:
    """Where the signature of (comparison, tool, choice) sits in a subscriber's vote stream."""
    if not (0 <= comparison < _VOTE_MAX_CARDS and 0 <= tool < _VOTE_MAX_TOOLS):
        raise ValueError(f"no vote link for card {comparison}, tool {tool}")
    return (comparison * _VOTE_MAX_TOOLS + tool) * 2 + (choice == "skip")


def _is_number(text: str, max_digits: int) -> bool:
    """Canonical decimal digits only: no sign, no spaces, no leading zero, no Unicode digits."""
    return (
        0 < len(text) <= max_digits
        and text.isascii()
        and text.isdigit()
        and (text == "0" or text[0] != "0")
    )


def signer_from_settings(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key.get_secret_value())


def confirm_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/confirm/{signer.make(subscriber_id, Purpose.CONFIRM)}"


def unsubscribe_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"


def preferences_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/preferences/{signer.make(subscriber_id, Purpose.PREFERENCES)}"
