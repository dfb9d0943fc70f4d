"""Messages-per-second per sender number, one budget for every worker process.

Celery's rate_limit counts per worker process, so four workers at 10/s send 40/s from one number. Here
each acquire reserves the next free slot(s) of the sender's schedule (GCRA: a "theoretical arrival time"
that moves forward by 1/rate per message) and sleeps until its slot comes. One atomic step per acquire,
no polling, and callers are served in arrival order.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

import redis

from aftercare.channels.base import OutgoingMessage
from aftercare.config import Settings

REDIS_PREFIX = "aftercare:ratelimit:"

# KEYS[1] = the sender's schedule; ARGV = microseconds per message, message count, max wait in microseconds
# (negative: no limit). Returns {granted, wait_microseconds}. Redis' clock is the one clock all workers share.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local wait = tat - now
if max_wait >= 0 and wait > max_wait then return {0, wait} end
local new_tat = tat + interval * count
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, wait}
"""


class RateLimitTimeout(Exception):
    """The next free slot is further away than max_wait; nothing was reserved."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next send slot in {wait:.3f}s")
        self.wait = wait


class RateLimiter(Protocol):
    def reserve(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> float:
        """Reserve the next `count` slots of `key` without waiting: returns the seconds until the first of them
        (the others follow 1/rate apart); raise RateLimitTimeout (nothing reserved) when that is past max_wait."""

    def acquire(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> None:
        """Block until `count` messages may go out from `key`; raise RateLimitTimeout past max_wait."""


def _acquire(limiter: RateLimiter, key: str, rate_per_second: float, count: int, max_wait: float | None) -> None:
    wait = limiter.reserve(key, rate_per_second, count, max_wait)
    if wait > 0:
        time.sleep(wait)


class RedisRateLimiter:
    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX) -> None:
        # Timeouts: a Redis that stopped answering must fail the send (it is retried later), not hang it.
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self._script = self.redis.register_script(GCRA_LUA)

    def reserve(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> float:
        interval_us = 1_000_000 / _positive(rate_per_second)
        max_wait_us = -1 if max_wait is None else max_wait * 1_000_000
        granted, wait_us = self._script(keys=[self.prefix + key], args=[interval_us, count, max_wait_us])
        if not granted:
            raise RateLimitTimeout(wait_us / 1_000_000)
        return max(0, wait_us) / 1_000_000

    def acquire(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> None:
        _acquire(self, key, rate_per_second, count, max_wait)


class LocalRateLimiter:
    """The same schedule kept in this process: for the embedded setup, where there is no Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_free: dict[str, float] = {}

    def reserve(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> float:
        interval = 1.0 / _positive(rate_per_second)
        with self._lock:
            now = time.monotonic()
            slot = max(self._next_free.get(key, now), now)
            wait = slot - now
            if max_wait is not None and wait > max_wait:
                raise RateLimitTimeout(wait)
            self._next_free[key] = slot + interval * count
        return wait

    def acquire(self, key: str, rate_per_second: float, count: int = 1, max_wait: float | None = None) -> None:
        _acquire(self, key, rate_per_second, count, max_wait)


def _positive(rate: float) -> float:
    if rate <= 0:
        raise ValueError("rate_per_second must be positive")
    return rate


_limiters: dict[tuple[int, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def get_rate_limiter(settings: Settings) -> RateLimiter:
    """The process' limiter: Redis-backed (shared by all workers) when the broker is Redis, else in-process."""
    url = settings.effective_broker_url if settings.uses_redis else "local"
    # Keyed by pid too: a forked worker child must not share its parent's Redis sockets.
    cache_key = (os.getpid(), url)
    with _limiters_lock:
        if cache_key not in _limiters:
            _limiters[cache_key] = RedisRateLimiter(url) if settings.uses_redis else LocalRateLimiter()
        return _limiters[cache_key]


def reset_rate_limiters() -> None:
    with _limiters_lock:
        _limiters.clear()


def sender_key(message: OutgoingMessage, settings: Settings) -> str:
    """The budget an SMS draws on: the from number it leaves by, or the messaging service choosing one."""
    return message.sender or settings.twilio_from or settings.twilio_messaging_service_sid or "default"


class Pacer:
    """One sender's share of the rate limit for a known list of sends: slots are reserved a block at a time (one
    round trip to the shared schedule per block, not per message) and handed out 1/rate apart.
    A block is at most a quarter second of the sender's rate, so a slow batch never hoards slots others need."""

    BLOCK_SECONDS = 0.25

    def __init__(self, limiter: RateLimiter, rate_per_second: float, remaining: dict[str, int]) -> None:
        """`remaining`: how many sends each key (sender_key) has ahead in this list."""
        self.limiter, self.rate, self.remaining = limiter, _positive(rate_per_second), dict(remaining)
        self._slots: dict[str, tuple[float, int]] = {}  # key -> (monotonic time of the next slot, slots left)

    def wait_turn(self, key: str) -> None:
        """Sleep until this send's slot (reserving the next block when the last one is used up)."""
        next_at, left = self._slots.get(key, (0.0, 0))
        if left == 0:
            block = max(1, min(self.remaining.get(key, 1), int(self.rate * self.BLOCK_SECONDS)))
            next_at, left = time.monotonic() + self.limiter.reserve(key, self.rate, block), block
        self.remaining[key] = self.remaining.get(key, 1) - 1
        self._slots[key] = (next_at + 1.0 / self.rate, left - 1)
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
