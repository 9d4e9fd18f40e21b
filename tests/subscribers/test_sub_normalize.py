"""Address, name, timezone and category normalization."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from digest.errors import InputError
from subscribers import normalize
from subscribers.normalize import (
    ascii_address,
    email_key,
    normalize_categories,
    normalize_email,
    normalize_name,
    validate_timezone,
)


def test_case_and_spaces_give_one_key() -> None:
    first = normalize_email("  Ada.Berger@Example.COM ")
    second = normalize_email("ada.berger@example.com")
    assert first.email == "Ada.Berger@example.com"  # local part kept as typed, domain lowered
    assert first.key == second.key == "ada.berger@example.com"


def test_plus_addressing_is_a_distinct_address() -> None:
    assert normalize_email("sam+digest@example.net").key != normalize_email("sam@example.net").key


def test_idn_unicode_and_punycode_spellings_share_a_key() -> None:
    unicode_form = normalize_email("Ada@Bücher.example")
    puny_form = normalize_email("ada@xn--bcher-kva.example")
    assert unicode_form.email == "Ada@bücher.example"
    assert puny_form.email == "ada@bücher.example"  # stored in Unicode for display
    assert unicode_form.key == puny_form.key == "ada@bücher.example"
    assert ascii_address(unicode_form.email) == "Ada@xn--bcher-kva.example"


def test_internationalized_local_part_is_refused() -> None:
    # It would need SMTPUTF8 end to end; the providers we send through do not offer it.
    with pytest.raises(InputError, match=r"invalid address: .*before the @-sign"):
        normalize_email("用户@例子.广告")
    assert ascii_address("用户@例子.广告") == "用户@例子.广告"  # no ASCII form exists


@pytest.mark.parametrize(
    "raw",
    [
        "ada@example.com\r\nBcc: victim@example.com",
        "ada@example.com\n",
        "ada\r@example.com",
        "ada@exam\x00ple.com",
    ],
)
def test_line_breaks_and_nul_are_refused(raw: str) -> None:
    with pytest.raises(InputError, match="line break or NUL"):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "ada@",
        "ada@@example.com",
        "ada example@example.com",
        "Ada <ada@example.com>",
        '"quoted"@example.com',
        "ada@localhost",
        "ada@[127.0.0.1]",
        "ada..b@example.com",
        "a" * 250 + "@example.com",
    ],
)
def test_invalid_addresses_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InputError, match=r"^invalid address: "):
        normalize_email(raw)


def test_non_string_is_refused() -> None:
    with pytest.raises(InputError):
        normalize_email(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        "ada.berger@example.com",
        "Ada.Berger@EXAMPLE.com",
        "INFO@example.com",  # RFC 2142 mailbox: email-validator lowercases it
        "Postmaster@example.com",
        "o'connor+tag@example.com",
        "x@bücher.example",
        "X@xn--bcher-kva.example",
        "a" * 64 + "@example.com",
        "a" * 200 + "@" + "b" * 40 + ".example.com",
        "a" * 236 + "@bücher.example",  # fits in Unicode, not in UTF-8 bytes
        "zoë@bücher.example",  # refused by both
        "user@sub.domain.example.org",
    ],
)
def test_fast_path_agrees_with_email_validator(raw: str) -> None:
    # Warm the domain cache with a different address, then compare with a full validation.
    domain = raw.rpartition("@")[2]
    normalize_email(f"warm.up@{domain}")
    assert domain in normalize._DOMAIN_CACHE
    try:
        expected = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        with pytest.raises(InputError):
            normalize_email(raw)
        return
    result = normalize_email(raw)
    assert result.email == expected.normalized
    assert result.key == normalize._key(expected.local_part, expected.domain)


def test_names_are_one_clean_line() -> None:
    assert (
        normalize_name("  Ada\r\nBcc: x@example.com\t Berger ") == "Ada Bcc: x@example.com Berger"
    )
    assert normalize_name("Zoe\u0308") == "Zoë"  # NFC
    assert normalize_name(None) == ""
    with pytest.raises(InputError, match="longer than 200"):
        normalize_name("x" * 201)


def test_timezones() -> None:
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    assert validate_timezone(" Asia/Kathmandu ") == "Asia/Kathmandu"
    assert validate_timezone("") == "UTC"
    for bad in (
        "Mars/Olympus",
        "../../etc/passwd",
        "Europe/",
        "Europe",
        "America",
        "Etc",
        "zone1970.tab",
        "tzdata.zi",
        "x" * 10_000,
        "Europe/../Europe/Berlin",
    ):
        with pytest.raises(InputError, match="unknown timezone"):
            validate_timezone(bad)


def test_categories_are_trimmed_and_deduplicated_in_order() -> None:
    assert normalize_categories([" Developer Tools ", "Image & Video", "developer tools"]) == [
        "Developer Tools",
        "Image & Video",
    ]
    assert normalize_categories([]) == []


@pytest.mark.parametrize("bad", [[""], ["  "], ["x" * 61], ["ok", "bad\x00"]])
def test_bad_categories_are_refused(bad: list[str]) -> None:
    with pytest.raises(InputError):
        normalize_categories(bad)


def test_a_single_string_is_not_a_category_list() -> None:
    with pytest.raises(InputError, match="list"):
        normalize_categories("Developer Tools")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("anna@strasse.de", "anna@straße.de"),
        ("a@σίσυφος.gr", "a@σίσυφοσ.gr"),
        ("x@faß.example", "x@fass.example"),
    ],
)
def test_different_domains_keep_different_keys(one: str, other: str) -> None:
    assert email_key(one) != email_key(other)


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["anna@straße.de", "ANNA@STRAßE.DE", "anna@xn--strae-oqa.de"], "anna@straße.de"),
        (["Anna@Strasse.DE", "anna@strasse.de"], "anna@strasse.de"),
        (["a@σίσυφος.gr", "a@xn--kxa6ajbbmh.gr"], "a@σίσυφος.gr"),
    ],
)
def test_one_address_in_any_spelling_has_one_key(spellings: list[str], key: str) -> None:
    assert {email_key(spelling) for spelling in spellings} == {key}
