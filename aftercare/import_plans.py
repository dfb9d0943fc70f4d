"""The schedule of an imported session, planned once per distinct plan input rather than once per row.

plan_messages reads, of a request, only the treatment, the time zone, the treatment instant and which channels may
be used: those (with the clinic's quiet hours and the import's `now`, fixed for one import) are the cache key, so a
cached plan equals what planning the row itself gives (tests/test_import_cache.py checks it across time zones and
DST dates).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from aftercare.models import Clinic
from aftercare.protocols import load_protocol
from aftercare.schedule.enrollment import EnrollmentRequest, plan_messages

PlanKey = tuple[str, str, datetime, bool, bool]
# A plan is a dozen small dicts (about 15 kB): a file whose every row has its own treatment time must not keep
# them all.
MAX_PLANS = 512


def plan_key(request: EnrollmentRequest) -> PlanKey:
    """(treatment, time zone, treatment instant, SMS allowed, email usable): all that planning depends on.
    Equal instants written with other offsets are equal keys (datetimes compare and hash by instant)."""
    return (request.treatment, request.timezone, request.treated_at, request.sms_consent,
            bool(request.email) and request.email_consent)


class PlanCache:
    """plan_messages for one clinic at one `now`, remembered for the last MAX_PLANS distinct keys."""

    def __init__(self, clinic: Clinic, now: datetime, *, size: int = MAX_PLANS) -> None:
        self.clinic, self.now, self.size = clinic, now, size
        self.plans: OrderedDict[PlanKey, tuple[dict, ...]] = OrderedDict()

    def rows(self, request: EnrollmentRequest) -> tuple[dict, ...]:
        """The outbox rows (dicts without enrollment_id, in protocol order) for the request's session. Shared
        between calls: copy a row before changing it."""
        key = plan_key(request)
        rows = self.plans.get(key)
        if rows is not None:
            self.plans.move_to_end(key)
            return rows
        rows = tuple(plan_messages(load_protocol(request.treatment), clinic=self.clinic, request=request, now=self.now))
        self.plans[key] = rows
        if len(self.plans) > self.size:
            self.plans.popitem(last=False)
        return rows
