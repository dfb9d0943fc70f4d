"""Dispatcher tick (Celery beat) and batch delivery tasks."""

from __future__ import annotations

from aftercare.schedule.delivery import deliver_batch
from aftercare.schedule.tick import tick as run_tick
from tasks.app import app


@app.task(name="tasks.dispatch.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return run_tick(lambda ids, token, urgent=False: deliver.apply_async((ids, token),
                                                                        queue="dispatch" if urgent else "celery"))


# Acknowledged when done, not when started: if the worker process running a batch dies (OOM, SIGKILL), the
# broker hands the batch to another process at once instead of leaving its rows to wait out their claim lease.
# The claim token makes a second run send only what the first did not record; pages have a short lease of their
# own (AFTERCARE_PAGE_LEASE_SECONDS) for the case where the whole worker, parent and all, is gone.
@app.task(name="tasks.dispatch.deliver", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver(ids: list[int], token: str) -> dict[str, int]:
    return dict(deliver_batch(ids, token))
