"""Twilio delivery status callbacks: move a sent message to delivered, or to failed with the carrier's code.

Final states do not regress: a `failed` or `sent` that arrives after `delivered` changes nothing. A `delivered`
after `failed` is believed (it is the handset's own receipt) but undoes nothing that followed the failure. A
failure reported here leads to what an immediate API error leads to (schedule/fallback.py); only opt-out codes opt
anyone out. A callback can beat the send's own commit: it waits in PendingStatus until the row has its SID.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aftercare.channels.twilio_sms import is_opt_out
from aftercare.models import MessageStatus, PendingStatus, ScheduledMessage, utcnow
from aftercare.schedule.fallback import after_permanent_sms_failure

log = logging.getLogger(__name__)
M = ScheduledMessage
FAILURES = ("undelivered", "failed")
ACTIONABLE = ("delivered", *FAILURES)
# A callback whose message never appears (a reply sent as TwiML, a message sent by another system) is not kept
# for ever.
PENDING_FOR = timedelta(days=1)


def apply_status(session: Session, *, message_sid: str, status: str, error_code: str | None,
                 now: datetime | None = None) -> bool:
    """Apply one callback. Returns False when no message has that SID yet: the callback is then kept to be
    applied when it has (see apply_pending_statuses)."""
    now = now or utcnow()
    status = (status or "").lower()[:16]
    error_code = error_code.replace("\x00", "")[:32] if error_code else None
    row = session.scalar(select(M).where(M.provider_id == message_sid))
    if row is None:
        if status in ACTIONABLE:  # queued, sending, sent or junk would change nothing once the row appears
            _keep_for_later(session, message_sid, status, error_code, now)
        return False
    _apply(session, row, status, error_code, now)
    return True


def apply_pending_statuses(session: Session, provider_sid: str) -> int:
    """Apply, in the order they came, the kept callbacks for a SID that a message now has. Returns how many."""
    row = session.scalar(select(M).where(M.provider_id == provider_sid))
    if row is None:
        return 0
    pending = list(session.scalars(select(PendingStatus).where(PendingStatus.provider_sid == provider_sid)
                                   .order_by(PendingStatus.received_at, PendingStatus.id)))
    for callback in pending:
        _apply(session, row, callback.status, callback.error_code, callback.received_at)
        session.delete(callback)
    return len(pending)


def _apply(session: Session, row: ScheduledMessage, status: str, error_code: str | None, now: datetime) -> None:
    if status == "delivered" and row.status in (MessageStatus.SENT, MessageStatus.CLAIMED, MessageStatus.FAILED):
        row.status, row.delivered_at = MessageStatus.DELIVERED, now
    elif status in FAILURES and row.status in (MessageStatus.SENT, MessageStatus.CLAIMED):
        row.status, row.failed_at = MessageStatus.FAILED, now
        row.error_code, row.error = error_code, f"carrier status {status}"
        after_permanent_sms_failure(session, row, code=error_code, opted_out=is_opt_out(error_code), now=now)
    # queued, sending, sent ... (or a report after a final state): nothing we do not know already


def _keep_for_later(session: Session, sid: str, status: str, error_code: str | None, now: datetime) -> None:
    log.warning("status callback %r for message %s, not stored yet: kept until it is", status, sid)
    session.execute(delete(PendingStatus).where(PendingStatus.received_at < now - PENDING_FOR))
    session.add(PendingStatus(provider_sid=sid, status=status, error_code=error_code, received_at=now))
    # A send recorded in the instant between its own look for kept callbacks and this one's commit would miss
    # them: any such stray is settled by the next callback that has to be kept.
    strays = session.scalars(select(PendingStatus.provider_sid).join(M, M.provider_id == PendingStatus.provider_sid)
                             .where(PendingStatus.provider_sid != sid).distinct())
    for stray in list(strays):
        apply_pending_statuses(session, stray)
