"""Prometheus metrics for /metrics (prometheus-client).

Two kinds, so that several web processes and workers give one consistent answer:
- gauges read from the database at scrape time by `DatabaseCollector` (messages by status and channel, dispatcher
  lag, open escalations and review items by level): the database is the one truth, whichever process answers;
- counters and histograms updated in the process where the event happens (reply to page and page to
  acknowledgement times, triage levels, webhook latency, delivery outcomes). With PROMETHEUS_MULTIPROC_DIR set
  (prometheus-client's own variable: an empty folder shared by every web and worker process on the host), each
  process writes them there and a scrape adds them up; without it they live in this process's default registry.

Labels are levels, statuses, channels and endpoints only: never anything about a patient.
"""

from __future__ import annotations

import os
from collections import Counter as Counts
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aftercare.db import session_factory
from aftercare.health import dispatcher_lag_seconds
from aftercare.models import (
    Escalation,
    EscalationStatus,
    MessageKind,
    MessageStatus,
    ReviewItem,
    ReviewStatus,
    ScheduledMessage,
    utcnow,
)

# Seconds: from half a minute (an emergency paged at once) to a day (nobody acknowledged overnight).
_PAGING_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)

REPLY_TO_PAGE = Histogram("aftercare_reply_to_page_seconds",
                          "From a patient's reply opening an escalation to its first page sent", ["level"],
                          buckets=_PAGING_BUCKETS)
PAGE_TO_ACK = Histogram("aftercare_page_to_ack_seconds",
                        "From an escalation's first page sent to its acknowledgement", ["level"],
                        buckets=_PAGING_BUCKETS)
TRIAGE = Counter("aftercare_triage", "Inbound replies by triage level", ["level"])
WEBHOOK_LATENCY = Histogram("aftercare_webhook_seconds", "Time to answer a Twilio webhook", ["endpoint"])
DELIVERIES = Counter("aftercare_deliveries", "Outcomes of delivery attempts", ["outcome"])


def observe_reply_to_page(level: str, waited: timedelta) -> None:
    REPLY_TO_PAGE.labels(level).observe(max(0.0, waited.total_seconds()))


def observe_page_to_ack(level: str, waited: timedelta) -> None:
    PAGE_TO_ACK.labels(level).observe(max(0.0, waited.total_seconds()))


def observe_acknowledged(session: Session, escalation: Escalation) -> None:
    """Time the acknowledgement of `escalation` from its first page sent (none sent yet: not a paging time)."""
    first_sent = session.scalar(select(func.min(ScheduledMessage.sent_at)).where(
        ScheduledMessage.escalation_id == escalation.id, ScheduledMessage.kind == MessageKind.PAGE,
        ScheduledMessage.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED))))
    if first_sent is not None and escalation.acknowledged_at is not None:
        observe_page_to_ack(escalation.level, escalation.acknowledged_at - first_sent)


def count_triage(level: str | None) -> None:
    TRIAGE.labels(level or "none").inc()


def observe_webhook(endpoint: str, seconds: float) -> None:
    WEBHOOK_LATENCY.labels(endpoint).observe(seconds)


def count_deliveries(counts: Counts) -> None:
    """`counts`: a delivery batch's outcomes ({"sent": 3, "retry": 1, ...})."""
    for outcome, number in counts.items():
        if number:
            DELIVERIES.labels(outcome).inc(number)


class DatabaseCollector(Collector):
    """Gauges computed from the database at each scrape."""

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration; the families are known only once collected

    def collect(self) -> Iterator[Metric]:
        M = ScheduledMessage
        messages = GaugeMetricFamily("aftercare_messages", "Scheduled messages by status and channel",
                                     labels=["status", "channel"])
        escalations = GaugeMetricFamily("aftercare_open_escalations", "Escalations not yet acknowledged, by level",
                                        labels=["level"])
        reviews = GaugeMetricFamily("aftercare_open_review_items", "Review items nobody has read, by level",
                                    labels=["level"])
        now = utcnow()
        with session_factory()() as session:
            for status, channel, number in session.execute(
                    select(M.status, M.channel, func.count()).group_by(M.status, M.channel)):
                messages.add_metric([status, channel], number)
            for level, number in session.execute(select(Escalation.level, func.count()).where(
                    Escalation.status == EscalationStatus.OPEN).group_by(Escalation.level)):
                escalations.add_metric([level], number)
            for level, number in session.execute(select(ReviewItem.level, func.count()).where(
                    ReviewItem.status == ReviewStatus.OPEN).group_by(ReviewItem.level)):
                reviews.add_metric([level or "none"], number)
            lag = dispatcher_lag_seconds(session, now=now)
        yield messages
        yield escalations
        yield reviews
        yield GaugeMetricFamily("aftercare_dispatcher_lag_seconds", "How long the oldest due message has waited",
                                value=lag)


class _InProcess(Collector):
    """This process's own metrics (the default registry), for a scrape registry built per request."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition() -> tuple[bytes, str]:
    """The text a Prometheus scrape gets, and its content type."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus-client's own switch, read by the client itself
        MultiProcessCollector(registry)
    else:
        registry.register(_InProcess())
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
