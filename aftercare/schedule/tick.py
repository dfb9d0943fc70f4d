"""One dispatcher tick: open due escalation pages, claim due messages, hand them to delivery in batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aftercare.config import Settings, get_settings
from aftercare.db import session_factory
from aftercare.schedule.delivery import deliver_batch
from aftercare.schedule.dispatcher import batches, claim_due_messages

Enqueue = Callable[[list[int], str], None]


def tick(enqueue: Enqueue, *, settings: Settings | None = None) -> dict[str, int]:
    """Claim what is due and enqueue it. The claim is committed before the first enqueue."""
    settings = settings or get_settings()
    paged = _sweep_escalations()
    with session_factory()() as session:
        claim = claim_due_messages(session, limit=settings.dispatch_claim_limit,
                                   lease_seconds=settings.claim_lease_seconds)
    for batch in batches(claim.ids, settings.dispatch_batch_size):
        enqueue(batch, claim.token)
    return {"claimed": len(claim.ids), "paged": paged}


def dispatch_once(*, settings: Settings | None = None) -> dict[str, int]:
    """A whole cycle in this process, no broker: used by `aftercare dispatch --once` and local runs."""
    settings = settings or get_settings()
    counts: Counter = Counter()

    def deliver_now(ids: list[int], token: str) -> None:
        counts.update(deliver_batch(ids, token, settings=settings))

    result = tick(deliver_now, settings=settings)
    return {"claimed": result["claimed"], "sent": counts["sent"], "failed": counts["failed"],
            "retry": counts["retry"], "skipped": counts["skipped"], "paged": result["paged"]}


def _sweep_escalations() -> int:
    from aftercare.escalation.paging import queue_due_pages  # the escalation package builds on this one

    with session_factory()() as session:
        paged = queue_due_pages(session)
        session.commit()
    return paged
