"""The per-sender rate limit: held roughly over time, and one budget for every limiter on the same Redis."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from aftercare.channels.base import OutgoingMessage
from aftercare.channels.ratelimit import (
    LocalRateLimiter,
    Pacer,
    RateLimiter,
    RateLimitTimeout,
    RedisRateLimiter,
    get_rate_limiter,
    reset_rate_limiters,
    sender_key,
)
from aftercare.config import Settings

REDIS_URL = os.environ.get("AFTERCARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    reset_rate_limiters()
    yield
    reset_rate_limiters()


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"test:ratelimit:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


def local_limiter(_prefix: str) -> RateLimiter:
    return LocalRateLimiter()


def redis_limiter(prefix: str) -> RateLimiter:
    return RedisRateLimiter(REDIS_URL, prefix=prefix)


def acquired_within(limiters: list[RateLimiter], key: str, rate: float, seconds: float, threads: int = 4) -> int:
    """How many single acquires all these limiters, each from several threads, got through in `seconds`."""
    deadline = time.monotonic() + seconds
    counts: list[int] = []

    def hammer(limiter: RateLimiter) -> None:
        n = 0
        while True:
            limiter.acquire(key, rate)
            if time.monotonic() > deadline:
                break
            n += 1
        counts.append(n)

    workers = [threading.Thread(target=hammer, args=(lim,)) for lim in limiters for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts)


@pytest.mark.parametrize("make", [local_limiter, redis_limiter])
def test_a_limiter_holds_its_rate_roughly(make: Callable[[str], RateLimiter], prefix):
    # 20/s for 1.5 s: about 31 (the first goes at once); generous bounds, this is not a timing test.
    count = acquired_within([make(prefix)], "+15005550006", rate=20, seconds=1.5)
    assert 20 <= count <= 40


def test_two_redis_limiters_share_one_budget(prefix):
    # Two clients with their own connection pools stand for two worker processes.
    count = acquired_within([redis_limiter(prefix), redis_limiter(prefix)], "+15005550006", rate=20, seconds=1.5)
    assert 20 <= count <= 40  # one budget: not the ~60 two separate budgets would allow


@pytest.mark.parametrize("make", [local_limiter, redis_limiter])
def test_senders_have_separate_budgets(make: Callable[[str], RateLimiter], prefix):
    limiter = make(prefix)
    limiter.acquire("+15005550001", 1)
    started = time.monotonic()
    limiter.acquire("+15005550002", 1)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("make", [local_limiter, redis_limiter])
def test_a_batch_count_reserves_that_many_slots(make: Callable[[str], RateLimiter], prefix):
    limiter = make(prefix)
    limiter.acquire("+15005550006", 20, count=10)  # 10 slots at 20/s: the next one is half a second away
    started = time.monotonic()
    limiter.acquire("+15005550006", 20)
    assert 0.3 <= time.monotonic() - started <= 1.5


@pytest.mark.parametrize("make", [local_limiter, redis_limiter])
def test_max_wait_refuses_without_spending_the_budget(make: Callable[[str], RateLimiter], prefix):
    limiter = make(prefix)
    limiter.acquire("+15005550006", 1, count=5)
    with pytest.raises(RateLimitTimeout) as refused:
        limiter.acquire("+15005550006", 1, max_wait=0.1)
    assert 3 <= refused.value.wait <= 5.5
    with pytest.raises(RateLimitTimeout) as again:
        limiter.acquire("+15005550006", 1, max_wait=0.1)
    assert again.value.wait <= refused.value.wait  # nothing was reserved by the refusal


def test_redis_keys_expire_once_the_schedule_is_in_the_past(prefix):
    RedisRateLimiter(REDIS_URL, prefix=prefix).acquire("+15005550006", 10, count=5)
    ttl_ms = redis.Redis.from_url(REDIS_URL).pttl(prefix + "+15005550006")
    assert 0 < ttl_ms <= 2000


def test_redis_acquire_is_one_fast_round_trip(prefix):
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    started = time.perf_counter()
    for n in range(500):
        limiter.acquire(f"sender-{n % 10}", 1_000_000)
    assert time.perf_counter() - started < 2.5  # ~0.2 ms each on loopback; >= 200/s even on a slow box


def test_get_rate_limiter_shares_redis_when_the_broker_is_redis_and_is_local_otherwise(tmp_path):
    on_redis = get_rate_limiter(Settings(home=tmp_path, broker_url=REDIS_URL))
    assert isinstance(on_redis, RedisRateLimiter)
    assert get_rate_limiter(Settings(home=tmp_path, broker_url=REDIS_URL)) is on_redis
    embedded = get_rate_limiter(Settings(home=tmp_path))
    assert isinstance(embedded, LocalRateLimiter)
    assert get_rate_limiter(Settings(home=tmp_path)) is embedded  # one budget per process


def test_sender_key_is_the_from_number_or_the_messaging_service(tmp_path):
    message = OutgoingMessage(message_id=1, channel="sms", to="+62811", body="hi")
    assert sender_key(message, Settings(home=tmp_path, twilio_from="+15005550006")) == "+15005550006"
    override = OutgoingMessage(message_id=1, channel="sms", to="+62811", body="hi", sender="+15005550001")
    assert sender_key(override, Settings(home=tmp_path, twilio_from="+15005550006")) == "+15005550001"
    assert sender_key(message, Settings(home=tmp_path, twilio_messaging_service_sid="MG1")) == "MG1"


class CountingLimiter:
    """A real limiter that also counts its round trips to the shared schedule."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner, self.reserves = inner, []

    def reserve(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> float:
        self.reserves.append((key, count))
        return self.inner.reserve(key, rate_per_second, count, max_wait)


@pytest.mark.parametrize("make", [local_limiter, redis_limiter])
def test_a_pacer_reserves_a_block_of_sends_at_a_time_and_spaces_them_by_the_rate(make, prefix):
    limiter = CountingLimiter(make(prefix))
    pacer = Pacer(limiter, 40, {"+15005550006": 25, "+15005550007": 3})
    started = time.monotonic()
    for _ in range(25):
        pacer.wait_turn("+15005550006")
    elapsed = time.monotonic() - started
    for _ in range(3):
        pacer.wait_turn("+15005550007")
    # A quarter second of 40/s is 10 slots: 3 round trips for 25 sends, 1 for the other sender's 3.
    assert limiter.reserves == [("+15005550006", 10), ("+15005550006", 10), ("+15005550006", 5),
                                ("+15005550007", 3)]
    assert 24 / 40 - 0.05 <= elapsed < 24 / 40 + 0.5  # the 25th send goes 24 intervals after the first


def test_pacers_in_two_places_share_one_budget_on_redis(prefix):
    """Two workers' pacers on one Redis schedule: together never faster than the sender's rate."""
    key, rate, each = "+15005550006", 50, 30
    done: list[float] = []

    def send_all() -> None:
        pacer = Pacer(redis_limiter(prefix), rate, {key: each})
        for _ in range(each):
            pacer.wait_turn(key)
            done.append(time.monotonic())

    threads = [threading.Thread(target=send_all) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 2 * each
    assert max(done) - started >= (2 * each - 1) / rate - 0.05
