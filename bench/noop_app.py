"""The dispatch benchmark's yardstick: the production Celery configuration (tasks/app.py `make_app`, same broker,
serializer, prefetch and transport options) with one task that does nothing. One no-op task per message is the
least a one-task-per-message design could cost; batching has to beat it."""

from __future__ import annotations

from tasks.app import make_app

app = make_app()
app.conf.include = []  # only the no-op task: the production tasks are what this is compared with
app.conf.beat_schedule = {}


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None
