"""Input normalization for subscriber data: addresses, names, timezones and categories.

Every way in (web form, CLI, CSV import, webhook) goes through these functions, so that one
address always maps to one ``email_key`` however it was typed: ``Ada@Example.COM``,
``ada@example.com`` and ``ada@xn--bcher-kva.example`` / ``ada@bücher.example`` pairs collide as
they should, while different domains stay apart even where case-folding would merge them
(``strasse.de`` and ``straße.de``; ``σίσυφος.gr`` and ``σίσυφοσ.gr``): domains follow UTS-46 /
IDNA 2008 (the ``idna`` package, through email-validator), the local part ``str.lower``.
Syntax checks are delegated to ``email-validator`` (no DNS lookups).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)

from digest.errors import InputError
from digest.timezones import check_zone

MAX_NAME_LENGTH = 200
MAX_CATEGORY_LENGTH = 60
_FORBIDDEN = ("\r", "\n", "\0")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")

# Domain part as typed -> (Unicode domain, ASCII domain), filled by full validations. A CSV
# import of 100,000 rows spends most of its validation time on the few distinct domains; see
# ``normalize_email`` for the fast path that uses this.
_DOMAIN_CACHE: dict[str, tuple[str, str]] = {}
_DOMAIN_CACHE_LIMIT = 50_000


def allow_test_domains(allowed: bool) -> None:
    """Accept (or refuse again) addresses at the reserved ``.test`` domains, such as
    ``ada@example.test``, in this process: ``DIGEST_ALLOW_TEST_DOMAINS`` for staging.

    The entry points (CLI, web app) call this once with the setting; it switches
    email-validator's own flag, so the check before a send agrees with the one at sign-up.
    """
    import email_validator

    if allowed != email_validator.TEST_ENVIRONMENT:
        email_validator.TEST_ENVIRONMENT = allowed
        _DOMAIN_CACHE.clear()  # its domains were validated under the other rule


@dataclass(frozen=True, slots=True)
class NormalizedEmail:
    """An address ready to store: ``email`` for display and sending, ``key`` for identity."""

    email: str
    key: str


def normalize_email(raw: str) -> NormalizedEmail:
    """Validate ``raw`` and return its display form and its case-insensitive key.

    Raises ``InputError("invalid address: ...")`` for anything that is not a single, plain
    address (display names, quoted local parts, IP literals and line breaks are refused).
    Internationalized domains are welcome; a non-ASCII part before the ``@`` is refused, since
    it needs SMTPUTF8 all the way to the mailbox and the providers we send through lack it.
    """
    if not isinstance(raw, str):
        raise InputError("invalid address: not a string")
    if any(char in raw for char in _FORBIDDEN):
        raise InputError("invalid address: contains a line break or NUL character")
    address = raw.strip()
    if not address:
        raise InputError("invalid address: empty")
    fast = _fast_path(address)
    if fast is not None:
        return fast
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InputError(f"invalid address: {address!r}: {exc}") from None
    domain_part = address.rpartition("@")[2]
    if len(_DOMAIN_CACHE) >= _DOMAIN_CACHE_LIMIT:
        _DOMAIN_CACHE.clear()
    _DOMAIN_CACHE[domain_part] = _DOMAIN_CACHE[valid.domain] = (valid.domain, valid.ascii_domain)
    return NormalizedEmail(email=valid.normalized, key=_key(valid.local_part, valid.domain))


def _key(local_part: str, domain: str) -> str:
    # ``domain`` is already the UTS-46 (IDNA 2008, non-transitional) form email-validator
    # makes with the ``idna`` package: lowercased, with ß and final ς kept, since straße.de
    # and strasse.de are different domains. ``casefold`` would merge them; ``lower`` on the
    # (ASCII) local part is all the case-insensitivity a key needs.
    return f"{local_part.lower()}@{domain}"


def _fast_path(address: str) -> NormalizedEmail | None:
    """The result ``validate_email`` would give, for the common case only; else None.

    Taken only when the domain (as typed) was already validated in full and the local part is
    a plain ASCII dot-atom: for those, ``validate_email`` returns the local part unchanged and the
    domain's cached forms, and the length limits below are the ones it applies. The
    equivalence is checked by a differential test.
    """
    local, at, domain_part = address.rpartition("@")
    if not at or not local.isascii():
        return None
    forms = _DOMAIN_CACHE.get(domain_part)
    if forms is None or not DOT_ATOM_TEXT.match(local):
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return None
    domain, ascii_domain = forms
    normalized = f"{local}@{domain}"
    if (
        len(address.encode()) > EMAIL_MAX_LENGTH
        or len(normalized.encode()) > EMAIL_MAX_LENGTH
        or len(local) + 1 + len(ascii_domain) > EMAIL_MAX_LENGTH
    ):
        return None
    return NormalizedEmail(email=normalized, key=_key(local, domain))


def ascii_address(email: str) -> str:
    """``email`` with its domain in IDNA ASCII form, the form to hand to a mail provider.

    An address whose local part is not ASCII has no such form and is returned unchanged.
    """
    local, _, domain = email.rpartition("@")
    if domain.isascii() or not local.isascii():
        return email
    forms = _DOMAIN_CACHE.get(domain)
    if forms is not None:
        return f"{local}@{forms[1]}"
    try:
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return email
    return valid.ascii_email or email


def email_key(raw: str) -> str:
    """The identity key of ``raw`` (raises ``InputError`` like ``normalize_email``)."""
    return normalize_email(raw).key


def normalize_name(raw: str | None) -> str:
    """A display name on one line: control characters and runs of spaces become one space."""
    if raw is None:
        return ""
    if not unicodedata.is_normalized("NFC", raw):
        raw = unicodedata.normalize("NFC", raw)
    name = " ".join((raw if raw.isprintable() else _CONTROL.sub(" ", raw)).split())
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name


def validate_timezone(name: str | None) -> str:
    """Return ``name`` if it is a known IANA timezone (empty means UTC), else raise."""
    zone = (name or "").strip()
    if not zone:
        return "UTC"
    try:
        return check_zone(zone)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def normalize_categories(categories: Iterable[str]) -> list[str]:
    """Trimmed, deduplicated (first spelling kept, order preserved) category names.

    An empty list means "all categories". Empty names and names over 60 characters are refused.
    """
    if isinstance(categories, str):
        raise InputError("categories must be a list of names, not one string")
    seen: set[str] = set()
    result: list[str] = []
    for raw in categories:
        category = _SPACES.sub(" ", raw).strip()
        if not category:
            raise InputError("empty category name")
        if len(category) > MAX_CATEGORY_LENGTH:
            raise InputError(
                f"category {category[:20]!r}... is longer than {MAX_CATEGORY_LENGTH} characters"
            )
        if _CONTROL.search(category):
            raise InputError(f"category {category!r} contains control characters")
        folded = category.casefold()
        if folded not in seen:
            seen.add(folded)
            result.append(category)
    return result
