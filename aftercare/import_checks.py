"""Checking one CSV row of an import as `enroll` checks its arguments, with the costly checks done once per distinct
value: a file repeats its time zones, treatments and treatment times thousands of times, and a family phone more
than once, while parsing a phone number costs tens of microseconds.

The checks, their order (so the first problem found is the one reported) and their messages are those of
enrollment.validate_request; tests/test_import_cache.py compares the two on good and bad rows.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from aftercare.contact import (
    check_name,
    check_timezone,
    normalize_email,
    normalize_phone,
    parse_treated_at,
    phone_region,
)
from aftercare.errors import AftercareError, InputError
from aftercare.models import Clinic
from aftercare.schedule.enrollment import (
    EnrollmentRequest,
    check_language,
    check_treatment,
    check_treatment_time,
)

_TRUE = {"", "1", "true", "yes", "y", "ya"}
_FALSE = {"0", "false", "no", "n", "tidak"}
# Undecodable bytes, kept by the reader as lone surrogates (errors="surrogateescape").
_UNDECODED = re.compile("[\udc80-\udcff]")
# Bounds keep memory flat on a file of distinct values (every phone different): a cache that only grew would
# hold the whole file. A family phone repeats within a few rows, time zones and treatments are a handful.
_PHONES = 4096
_TIMES = 4096


class RowChecker:
    """Checks rows for one clinic at one moment (`now`: the future / too-long-ago test of treatment times)."""

    def __init__(self, clinic: Clinic, now: datetime) -> None:
        self.clinic_timezone, self.region, self.now = clinic.timezone, phone_region(clinic.phone), now

    def check(self, row: dict[Any, Any]) -> EnrollmentRequest:
        """An EnrollmentRequest for the row (a dict of column name to cell, extra cells under None);
        InputError with the first problem found."""
        if None in row:
            raise InputError("too many fields in this row")
        for key, value in row.items():
            if isinstance(value, str) and _UNDECODED.search(value):
                raise InputError(f"{key}: not valid UTF-8")
        get = lambda name: (row.get(name) or "").strip()  # noqa: E731
        if len(get("treated_at")) > 64:
            raise InputError("treated_at: too long")
        treated_at = parse_treated_at(get("treated_at"))
        sms_consent, email_consent = flag(get("sms_consent"), "sms_consent"), flag(get("email_consent"), "email_consent")
        language, treatment = _language(get("language").lower() or "en"), _treatment(get("treatment").lower())
        timezone = get("timezone") or self.clinic_timezone
        _raise_if(_timezone_error(timezone))
        _raise_if(_treatment_time_error(treated_at, self.now, treatment, timezone))
        return EnrollmentRequest(
            first_name=check_name(get("first_name"), field="first name", max_length=100),
            phone=_phone(get("phone"), self.region), email=normalize_email(get("email") or None), timezone=timezone,
            language=language, treatment=treatment, treated_at=treated_at, sms_consent=sms_consent,
            email_consent=email_consent)


def flag(value: str, name: str) -> bool:
    """A yes/no cell ("" is yes); InputError naming the column otherwise."""
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputError(f"{name}: expected true/false, got {value[:20]!r}")


def _raise_if(error: str | None) -> None:
    if error is not None:
        raise InputError(error)


def _outcome(check, *args: Any) -> tuple[Any, str | None]:
    """(value, None) or (None, the error's text): lru_cache keeps results, never exceptions."""
    try:
        return check(*args), None
    except AftercareError as exc:
        return None, str(exc)


@lru_cache(maxsize=64)
def _checked_language(value: str) -> tuple[str | None, str | None]:
    return _outcome(check_language, value)


def _language(value: str) -> str:
    language, error = _checked_language(value)
    _raise_if(error)
    return language


@lru_cache(maxsize=64)
def _checked_treatment(value: str) -> tuple[str | None, str | None]:
    return _outcome(lambda key: check_treatment(key).key, value)


def _treatment(value: str) -> str:
    treatment, error = _checked_treatment(value)
    _raise_if(error)
    return treatment


@lru_cache(maxsize=256)
def _timezone_error(name: str) -> str | None:
    return _outcome(check_timezone, name)[1]


@lru_cache(maxsize=_TIMES)
def _treatment_time_error(treated_at: datetime, now: datetime, treatment: str, timezone: str) -> str | None:
    # Only the instant matters (the planner works in UTC): 10:00+07:00 and 03:00Z are equal keys, as datetimes.
    return _outcome(lambda: check_treatment_time(treated_at, now, protocol=check_treatment(treatment),
                                                 tz=ZoneInfo(timezone)))[1]


@lru_cache(maxsize=_PHONES)
def _checked_phone(raw: str, region: str | None) -> tuple[str | None, str | None]:
    return _outcome(lambda: normalize_phone(raw, region=region))


def _phone(raw: str, region: str | None) -> str:
    phone, error = _checked_phone(raw, region)
    _raise_if(error)
    return phone
