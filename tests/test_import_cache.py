"""The import's once-per-distinct-value checks and plans give exactly what checking and planning each row does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import product

import pytest

from aftercare.contact import parse_treated_at
from aftercare.errors import AftercareError, InputError
from aftercare.import_checks import RowChecker, flag
from aftercare.import_plans import PlanCache
from aftercare.models import Clinic
from aftercare.protocols import TREATMENTS, load_protocol
from aftercare.schedule.enrollment import EnrollmentRequest, plan_messages, validate_request

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
CLINIC = Clinic(id=1, slug="glow", name="Glow", timezone="Asia/Jakarta", phone="+622150001234", quiet_start="21:00",
                quiet_end="08:00")


def _checked_row_by_row(row: dict) -> EnrollmentRequest:
    """The row check as the importer did it for every row before the caches (the reference)."""
    if None in row:
        raise InputError("too many fields in this row")
    for key, value in row.items():
        if isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value):
            raise InputError(f"{key}: not valid UTF-8")
    get = lambda name: (row.get(name) or "").strip()  # noqa: E731
    if len(get("treated_at")) > 64:
        raise InputError("treated_at: too long")
    try:
        return validate_request(
            CLINIC, first_name=get("first_name"), phone=get("phone"), email=get("email") or None,
            timezone=get("timezone") or None, language=get("language").lower() or "en",
            treatment=get("treatment").lower(), treated_at=parse_treated_at(get("treated_at")),
            sms_consent=flag(get("sms_consent"), "sms_consent"), email_consent=flag(get("email_consent"), "email_consent"),
            now=NOW)
    except AftercareError as exc:
        raise InputError(str(exc)) from None


def _outcome(check, row: dict) -> object:
    try:
        return check(row)
    except InputError as exc:
        return f"error: {exc}"


def _row(**cells: str) -> dict:
    row = {"first_name": "Ayu", "phone": "+6281234567890", "email": "", "timezone": "", "language": "id",
           "treatment": "mesotherapy", "treated_at": "2026-11-30T09:00:00+07:00", "sms_consent": "",
           "email_consent": ""}
    return {**row, **cells}


ROWS = [
    _row(), _row(phone="081234567890"), _row(phone="6281234567890"), _row(phone="12345"), _row(phone="6.28123E+11"),
    _row(phone=""), _row(first_name=""), _row(first_name="=SUM(A1)"), _row(first_name="Ctl\x07"),
    _row(email="ayu@example.com"), _row(email="not an email"), _row(timezone="Mars/Base"),
    _row(timezone="America/New_York"), _row(timezone="../etc"), _row(language="ID"), _row(language="fr"),
    _row(language=""), _row(treatment="Dermal-Filler"), _row(treatment="botox"),
    _row(treated_at="2026-11-30T09:00:00"), _row(treated_at="yesterday"), _row(treated_at="2026-12-30T09:00:00+07:00"),
    _row(treated_at="2025-01-01T09:00:00+07:00"), _row(treated_at="2026-11-30T02:00:00Z"), _row(treated_at="x" * 70),
    _row(sms_consent="maybe"), _row(sms_consent="tidak", email_consent="no"), _row(first_name="Bad\udcffName"),
    {**_row(), None: ["extra"]}, _row(phone="12345", treatment="botox", language="fr"),
]


def test_a_checked_row_equals_the_row_by_row_check_good_or_bad() -> None:
    checker = RowChecker(CLINIC, NOW)
    # Twice over, so the second pass answers from the caches, errors included.
    for row in ROWS + ROWS:
        assert _outcome(checker.check, row) == _outcome(_checked_row_by_row, row), row


def test_an_error_is_not_cached_as_a_value() -> None:
    checker = RowChecker(CLINIC, NOW)
    for _ in range(3):
        with pytest.raises(InputError, match="phone"):
            checker.check(_row(phone="12345"))


ZONES = ["Asia/Jakarta", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/Sao_Paulo"]
# Around the 2026 clock changes (US 8 Mar and 1 Nov, EU 29 Mar and 25 Oct, Lord Howe 5 Apr and 4 Oct), evenings
# (first-night steps in quiet hours) and mornings.
TREATED_AT = [datetime(2026, month, day, hour, minute, tzinfo=UTC) for month, day in
              [(3, 7), (3, 8), (3, 28), (3, 29), (4, 4), (10, 3), (10, 24), (10, 31), (11, 1)]
              for hour, minute in [(1, 30), (9, 0), (13, 45), (20, 15)]]


@pytest.mark.parametrize("zone", ZONES)
def test_a_cached_plan_equals_planning_the_row_itself(zone: str) -> None:
    cache = PlanCache(CLINIC, NOW, size=50)  # small: entries are evicted and planned again along the way
    for treated_at, treatment, (sms, email, email_ok) in product(
            TREATED_AT, TREATMENTS, [(True, "a@example.com", True), (False, "a@example.com", True),
                                     (False, None, True), (True, "a@example.com", False)]):
        now = treated_at + timedelta(minutes=5)
        cache.now = now  # one import plans at one `now`; here each session is planned as it ends
        request = EnrollmentRequest(first_name="Ayu", phone="+6281234567890", email=email, timezone=zone,
                                    language="en", treatment=treatment, treated_at=treated_at, sms_consent=sms,
                                    email_consent=email_ok)
        cache.plans.clear()
        first = cache.rows(request)
        # The same instant written with another offset, and another patient of the same shape: the cached plan.
        other = EnrollmentRequest(first_name="Budi", phone="+6281234567891", email=email and "b@example.com",
                                  timezone=zone, language="id", treatment=treatment,
                                  treated_at=treated_at.astimezone(timezone(timedelta(hours=-3))), sms_consent=sms,
                                  email_consent=email_ok)
        assert cache.rows(other) is first
        for one in (request, other):
            assert list(first) == plan_messages(load_protocol(treatment), clinic=CLINIC, request=one, now=now)


def test_the_plan_cache_keeps_at_most_its_size() -> None:
    cache = PlanCache(CLINIC, NOW, size=3)
    for hours in range(10):
        cache.rows(EnrollmentRequest(first_name="Ayu", phone="+6281234567890", email=None, timezone="Asia/Jakarta",
                                     language="en", treatment="mesotherapy",
                                     treated_at=NOW - timedelta(hours=hours)))
    assert len(cache.plans) == 3
