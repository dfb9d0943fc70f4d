"""Benchmark 2, backlog: one dispatcher claim of 500 due messages, while a small and a huge number of future
messages wait behind them. The claim reads the partial index of scheduled rows from its oldest due time, so
it should not notice the backlog: the ratio of the two medians is the result.

Two databases side by side, measured in alternation, so a noisy neighbour slows both alike.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from aftercare.db import make_engine
from aftercare.models import MessageStatus, ScheduledMessage
from aftercare.schedule.dispatcher import claim_due_messages
from bench import seed
from bench.common import Result, metric, pg_database

DUE = 500
SIZES = {False: (10_000, 1_000_000), True: (2_000, 20_000)}
REPEATS = {False: 15, True: 5}
STEPS_PER_ENROLLMENT = 20  # about a care protocol's length


def run(*, quick: bool) -> Result:
    small, large = SIZES[quick]
    result = Result("backlog", details={"due": DUE, "claim_limit": DUE, "repeats": REPEATS[quick]})
    with pg_database("backlog_small") as small_url, pg_database("backlog_large") as large_url:
        result.details["seed_seconds"] = {small: seed_backlog(small_url, small), large: seed_backlog(large_url, large)}
        timings = measure({small: small_url, large: large_url}, REPEATS[quick])
    medians = {size: statistics.median(values) * 1000 for size, values in timings.items()}
    result.details["timings_ms"] = {size: [round(v * 1000, 3) for v in values] for size, values in timings.items()}
    result.add(metric(f"claim {DUE} with {small:,} future (median)", medians[small], "ms"))
    result.add(metric(f"claim {DUE} with {large:,} future (median)", medians[large], "ms"))
    result.add(metric(f"{large:,} / {small:,} future", medians[large] / medians[small], "x", at_most=1.5))
    return result


def seed_backlog(url: str, future: int) -> float:
    """`future` messages due over the next 60 days and DUE messages due in the last minutes."""
    started = time.monotonic()
    now = datetime.now(UTC)
    with seed.connect(url) as conn:
        seed.disable_triggers(conn)
        clinic_id = seed.add_clinic(conn)
        seed.add_enrolled_patients(conn, clinic_id, -(-(future + DUE) // STEPS_PER_ENROLLMENT))
        seed.add_reminders(conn, clinic_id, future, due_at=now + timedelta(hours=1), spread=timedelta(days=60),
                           step_prefix="future")
        seed.add_reminders(conn, clinic_id, DUE, due_at=now - timedelta(minutes=10), spread=timedelta(minutes=5),
                           step_prefix="due")
    seed.analyze(url)
    return round(time.monotonic() - started, 1)


def measure(urls: dict[int, str], repeats: int) -> dict[int, list[float]]:
    engines = {size: make_engine(url) for size, url in urls.items()}
    timings: dict[int, list[float]] = {size: [] for size in urls}
    try:
        for round_number in range(repeats + 1):
            for size, engine in engines.items():
                seconds = one_claim(engine)
                if round_number:  # the first round warms the caches and the connection pool
                    timings[size].append(seconds)
    finally:
        for engine in engines.values():
            engine.dispose()
    return timings


def one_claim(engine) -> float:
    """Time one claim transaction (as the tick runs it), then put the rows back for the next round."""
    with Session(engine) as session:
        started = time.perf_counter()
        claim = claim_due_messages(session, limit=DUE, lease_seconds=300)
        seconds = time.perf_counter() - started
        if len(claim.ids) != DUE:
            raise RuntimeError(f"claimed {len(claim.ids)} messages, expected {DUE}")
        session.execute(update(ScheduledMessage).where(ScheduledMessage.id.in_(claim.ids))
                        .values(status=MessageStatus.SCHEDULED, claimed_until=None, claim_token=None, claimed_at=None))
        session.commit()
    return seconds
