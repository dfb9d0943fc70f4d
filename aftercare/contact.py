"""Checking and normalising what people type: phone numbers, emails, time zones, treatment times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from aftercare.errors import InputError

_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What can never be part of a name: C0 and C1 controls (NEL \x85 among them), the line and paragraph separators
# (many tools break lines there), and the bidi overrides and isolates that make text display in another order
# than it is stored ("Trojan source"). Ordinary letters of any script, emoji and apostrophes are fine.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# An RFC 2047 encoded word ("=?utf-8?q?...?="): mail software decodes it, so it can smuggle a line break into an
# email header. No one's name is written like this.
# A cell a spreadsheet would run ("=HYPERLINK(...)", "+cmd|...", "-2+3", "@SUM(...)"): no name starts so.
_FORMULA_START = frozenset("=+-@")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bq]\?[^?\s]*\?=", re.IGNORECASE)
# A phone column a spreadsheet saved as a number: "628123456789.0", "6.28123E+11", "6,28123E+11". The digits
# after the separator or lost to the exponent cannot be recovered, so these are refused, never guessed.
_SPREADSHEET_DECIMAL = re.compile(r"\+?\d+[.,]\d{1,2}")
_SPREADSHEET_EXPONENT = re.compile(r"\+?\d+(?:[.,]\d+)?e[+-]?\d+", re.IGNORECASE)


def normalize_phone(raw: str, *, region: str | None = None, field: str = "phone") -> str:
    """Return the number in E.164, or raise InputError (whose text never repeats the number).

    `region` (e.g. "ID") reads numbers typed without "+": a local number ("0812...") or one that starts with
    that region's country code ("62812..."), which is read as international when it is valid that way.
    """
    text = (raw or "").strip()
    if _SPREADSHEET_DECIMAL.fullmatch(text) or _SPREADSHEET_EXPONENT.fullmatch(text):
        raise InputError(f"invalid {field} number: saved by a spreadsheet as a number (like 6.28E+11 or ending "
                         "in .0), which loses digits; format the column as text and type the number again")
    number = _with_own_country_code(text, region) or _parse(text, region, field)
    if not phonenumbers.is_valid_number(number):
        raise InputError(f"invalid {field} number: not a valid number for its country") from None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _with_own_country_code(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """'62811123456' at an Indonesian clinic is +62 811123456, not a local number 62811123456 in front of which
    the country code goes once more: the number, read as international, if it is valid that way."""
    if not region or text.startswith(("+", "0")):
        return None
    code = str(phonenumbers.country_code_for_region(region))
    if not phonenumbers.normalize_digits_only(text).startswith(code):
        return None
    try:
        number = phonenumbers.parse("+" + text)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def _parse(text: str, region: str | None, field: str) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InputError(f"invalid {field} number: use international format such as +6281234567890") from None


@lru_cache(maxsize=256)
def phone_region(e164: str) -> str | None:
    """The region of a stored number, used to read local numbers typed for the same clinic."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))


def normalize_email(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if len(text) > 254 or not _EMAIL.match(text) or _CONTROL.search(text):
        raise InputError("invalid email address")
    return text


def check_timezone(name: str) -> ZoneInfo:
    try:
        if not name or _CONTROL.search(name) or name.startswith("/") or ".." in name:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name[:64]!r}: use an IANA name such as Asia/Jakarta") from None


def parse_treated_at(text: str) -> datetime:
    """An ISO 8601 time with an explicit UTC offset; a time without one is ambiguous and refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"invalid date {text[:40]!r}: use ISO 8601 with an offset, e.g. 2026-11-25T14:30:00+07:00") from None
    if value.tzinfo is None:
        raise InputError(f"date {text[:40]!r} has no UTC offset: add one, e.g. +07:00 or Z")
    try:
        value.astimezone(UTC) + timedelta(days=400)
    except OverflowError:
        raise InputError(f"date {text[:40]!r} is out of range") from None
    return value


def check_name(text: str, *, field: str, max_length: int) -> str:
    """A name (patient, clinic, staff) as typed, trimmed; InputError if it is empty, longer than `max_length`
    characters, or holds characters that could break a line, a header or the display order of what follows."""
    value = (text or "").strip()
    if not value:
        raise InputError(f"{field} must not be empty")
    if len(value) > max_length:
        raise InputError(f"{field} is too long ({len(value)} characters; at most {max_length})")
    if _NOT_IN_NAMES.search(value):
        raise InputError(f"{field} contains control characters (line breaks, tabs or text-direction marks)")
    if _ENCODED_WORD.search(value):
        raise InputError(f"{field} contains mail-encoded text (=?...?=)")
    if value[0] in _FORMULA_START:
        raise InputError(f"{field} starts with {value[0]!r}, which spreadsheets run as a formula; no name does")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise InputError(f"{field} is not valid UTF-8")
    return value
