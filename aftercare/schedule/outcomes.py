"""Writing delivery outcomes: sends the provider accepted, in group commits on a thread of their own; and the
few other outcomes (not sent, a renewed lease), one short transaction each.

Why group commits: one UPDATE and one COMMIT per message cost more CPU than the send itself. Each sending
thread hands its accepted message to the recorder and waits for the commit that records it before sending the
next; the recorder writes everything handed over while its previous commit ran, in one transaction (with eight
sending threads, up to eight messages per commit). So, as with a commit per message, a killed worker can leave
at most one sent-but-unrecorded message per sending thread (sent again once its claim returns). Every statement
is guarded by the claim token, so an outcome can only land on a row this delivery still holds.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from aftercare.db import get_engine
from aftercare.models import MessageStatus, PendingStatus, ScheduledMessage

log = logging.getLogger(__name__)
M = ScheduledMessage
ATTEMPTS = 3  # a dropped connection is retried on a fresh one: every statement here is idempotent


@dataclass(frozen=True, slots=True)
class Sent:
    row_id: int
    provider_id: str
    sent_at: datetime
    recorded: threading.Event  # set once its group's transaction has ended (committed or given up)


class _Connected:
    """A pooled connection taken on first use, replaced when the server dropped it."""

    def __init__(self) -> None:
        self._connection: Connection | None = None

    def run(self, work: Callable[[Connection], object]) -> object:
        """`work(connection)` then COMMIT, retried on a fresh connection when the database dropped this one."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._connection is None:
                    self._connection = get_engine().connect()
                result = work(self._connection)
                self._connection.commit()
                return result
            except DBAPIError:
                self.close()
                if attempt == ATTEMPTS:
                    raise
        return None

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class OutcomeWriter(_Connected):
    """One outcome per short transaction, for rows not sent and leases renewed (both rare on the hot path)."""

    def __enter__(self) -> OutcomeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, row_id: int, token: str, values: dict) -> bool:
        """Update our claimed row with `values`; False when the claim is no longer ours."""
        statement = (update(M).where(M.id == row_id, M.claim_token == token, M.status == MessageStatus.CLAIMED)
                     .values(**values))
        return bool(self.run(lambda connection: connection.execute(statement).rowcount == 1))


_SENT = (update(M)
         .where(M.id == bindparam("b_id"), M.claim_token == bindparam("b_token"), M.status == MessageStatus.CLAIMED)
         .values(status=MessageStatus.SENT, provider_id=bindparam("b_sid"), sent_at=bindparam("b_at"),
                 updated_at=bindparam("b_at"), claimed_until=None, error=None, error_code=None))

# On PostgreSQL a whole group is one UPDATE over arrays, with the same guard as _SENT: a group of eight sends is
# one statement, not eight. The status guard compares with a joined value on purpose: written as
# status = 'claimed' it lets the planner pick the partial lease index, whose row estimate is stale seconds after
# a claim, and scan every claimed row once per group; this way each row is found by its primary key.
_SENT_GROUP_PG = text("""
UPDATE scheduled_messages AS m
SET status = :sent, provider_id = v.sid, sent_at = v.at, updated_at = v.at,
    claimed_until = NULL, error = NULL, error_code = NULL
FROM unnest(CAST(:ids AS bigint[]), CAST(:sids AS text[]), CAST(:ats AS timestamptz[]),
            CAST(:expected AS text[])) AS v (id, sid, at, expected)
WHERE m.id = v.id AND m.claim_token = :token AND m.status = v.expected
""")


class SentRecorder(_Connected):
    """Group-commits sends for one claim token from any number of sending threads (see the module's docstring).
    `after_commit(group, pending_sids)` runs on the recorder's thread once a group is committed, with the SIDs
    whose status callbacks arrived before the send was recorded (kept in PendingStatus)."""

    def __init__(self, token: str, after_commit: Callable[[list[Sent], set[str]], None]) -> None:
        super().__init__()
        self.token, self.after_commit = token, after_commit
        self._queue: queue.SimpleQueue[Sent | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outcomes", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> SentRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self.close()
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def record(self, row_id: int, provider_id: str, sent_at: datetime) -> None:
        """Hand over one accepted send and wait until its group's transaction has ended."""
        sent = Sent(row_id, provider_id, sent_at, threading.Event())
        self._queue.put(sent)
        sent.recorded.wait()

    def _run(self) -> None:
        finished = False
        while not finished:
            group, finished = self._next_group()
            if group:
                self._record(group)

    def _next_group(self) -> tuple[list[Sent], bool]:
        """Wait for one outcome, then take every other one already waiting. True once the end was reached."""
        group: list[Sent] = []
        item = self._queue.get()
        while item is not None:
            group.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return group, False
        return group, True

    def _record(self, group: list[Sent]) -> None:
        try:
            pending = self.run(lambda connection: self._write(connection, group))
        except Exception as exc:  # sent but unrecorded: their claim returns them, so say so loudly
            log.error("recording %d sent messages failed: %s", len(group), type(exc).__name__)
            self.error = self.error or exc
            return
        finally:
            for sent in group:
                sent.recorded.set()
        try:
            self.after_commit(group, pending)
        except Exception:  # the outcomes are committed; what follows from them is best effort
            log.exception("after recording %d sent messages", len(group))

    def _write(self, connection: Connection, group: list[Sent]) -> set[str]:
        if connection.dialect.name == "postgresql":
            connection.execute(_SENT_GROUP_PG, {
                "ids": [s.row_id for s in group], "sids": [s.provider_id for s in group],
                "ats": [s.sent_at for s in group], "expected": [MessageStatus.CLAIMED.value] * len(group),
                "sent": MessageStatus.SENT.value, "token": self.token})
        else:
            connection.execute(_SENT, [{"b_id": s.row_id, "b_token": self.token, "b_sid": s.provider_id,
                                        "b_at": s.sent_at} for s in group])
        # In the same transaction, as a statement of its own (a fresh snapshot under READ COMMITTED): a callback
        # kept before this lookup is seen here, even one kept while the UPDATE waited on a lock. One kept between
        # this lookup and our commit is settled by the next callback kept (inbound/status.py, the strays).
        return set(connection.scalars(select(PendingStatus.provider_sid).where(
            PendingStatus.provider_sid.in_([s.provider_id for s in group]))))
