"""One dispatcher tick: open due escalation pages, claim due messages, hand them to delivery in batches."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from aftercare.config import Settings, get_settings
from aftercare.db import session_factory
from aftercare.health import TICK, record_heartbeat
from aftercare.schedule.delivery import deliver_batch
from aftercare.schedule.dispatcher import Claim, batches, claim_due_messages, in_flight

log = logging.getLogger(__name__)
Enqueue = Callable[..., None]  # (ids, token, urgent=False)


def tick(enqueue: Enqueue, *, settings: Settings | None = None) -> dict[str, int]:
    """Claim what is due and enqueue it; each claim is committed before its first enqueue.

    Pages are claimed first and go on the urgent queue, so an emergency never waits behind reminders.
    Reminders are claimed only up to what the workers have not yet started: a backlog waits in the
    database, not in the broker, where it could outlive its lease and be claimed twice.
    """
    settings = settings or get_settings()
    paged = _sweep_escalations()
    with session_factory()() as session:
        pages = claim_due_messages(session, limit=settings.dispatch_claim_limit,
                                   lease_seconds=settings.page_lease_seconds, pages=True)
        if pages.ids:
            enqueue(pages.ids, pages.token, urgent=True)
        budget = settings.dispatch_claim_limit - in_flight(session)
        reminders = (claim_due_messages(session, limit=budget, lease_seconds=settings.claim_lease_seconds)
                     if budget > 0 else Claim(token="", ids=[]))
    for batch in batches(reminders.ids, settings.dispatch_batch_size):
        enqueue(batch, reminders.token)
    _sweep_media(settings)  # last: pages and reminders never wait behind a photo download
    result = {"claimed": len(pages.ids) + len(reminders.ids), "paged": paged}
    _heartbeat({**result, "pages": len(pages.ids), "reminders": len(reminders.ids)})
    log.debug("tick: %s", result)
    return result


def _heartbeat(details: dict[str, int]) -> None:
    """The tick finished: /healthz reads this row to tell a running beat from a stopped one."""
    with session_factory()() as session:
        record_heartbeat(session, TICK, details=details)
        session.commit()


def dispatch_once(*, settings: Settings | None = None) -> dict[str, int]:
    """A whole cycle in this process, no broker: used by `aftercare dispatch --once` and local runs."""
    settings = settings or get_settings()
    counts: Counter = Counter()

    def deliver_now(ids: list[int], token: str, urgent: bool = False) -> None:
        counts.update(deliver_batch(ids, token, settings=settings))

    result = tick(deliver_now, settings=settings)
    return {"claimed": result["claimed"], "sent": counts["sent"], "failed": counts["failed"],
            "retry": counts["retry"], "skipped": counts["skipped"], "paged": result["paged"]}


def _sweep_media(settings: Settings) -> None:
    """Fetch photos whose task was lost or whose last try failed (a few per tick). A failure here is logged, never
    raised: the delivery work of this tick is already queued and must not be reported as failed."""
    from aftercare.inbound.media import sweep_pending_media

    try:
        sweep_pending_media(settings=settings)
    except Exception:
        log.exception("sweeping pending photos failed")


def _sweep_escalations() -> int:
    """Re-page unacknowledged escalations and page for review items nobody read in time. Returns the pages."""
    from aftercare.escalation.paging import queue_due_pages  # the escalation package builds on this one
    from aftercare.review.paging import queue_overdue_review_pages

    with session_factory()() as session:
        paged = queue_due_pages(session) + queue_overdue_review_pages(session)
        session.commit()
    return paged
