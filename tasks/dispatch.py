"""Dispatcher tick (Celery beat) and batch delivery tasks."""

from __future__ import annotations

from aftercare.schedule.delivery import deliver_batch
from aftercare.schedule.tick import tick as run_tick
from tasks.app import app


@app.task(name="tasks.dispatch.tick", ignore_result=True)
def tick() -> dict[str, int]:
    return run_tick(lambda ids, token, urgent=False: deliver.apply_async((ids, token),
                                                                        queue="dispatch" if urgent else "celery"))


@app.task(name="tasks.dispatch.deliver", ignore_result=True)
def deliver(ids: list[int], token: str) -> dict[str, int]:
    return dict(deliver_batch(ids, token))
