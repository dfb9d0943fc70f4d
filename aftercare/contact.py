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


def normalize_phone(raw: str, *, region: str | None = None, field: str = "phone") -> str:
    """Return the number in E.164, or raise InputError. `region` parses numbers typed without a country code."""
    text = (raw or "").strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InputError(f"invalid {field} number: use international format such as +6281234567890") from None
    if not phonenumbers.is_valid_number(number):
        raise InputError(f"invalid {field} number: not a valid number for its country") from None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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
    value = (text or "").strip()
    if not value:
        raise InputError(f"{field} must not be empty")
    if len(value) > max_length:
        raise InputError(f"{field} is too long ({len(value)} characters; at most {max_length})")
    if _CONTROL.search(value):
        raise InputError(f"{field} contains control characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise InputError(f"{field} is not valid UTF-8")
    return value
