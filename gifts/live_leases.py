"""How many live feed streams are open per client address and per (creator, live), across
every web process: leases in Redis (``gifts/live.py`` takes one per stream).

Each open stream holds a place in two sorted sets (scored by when its lease ends): its client
address's and its live's. The stream renews it while it runs; a place whose lease ran out
(its process was killed) is dropped by the next ``take``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

from django.conf import settings

from config.errors import DomainError, ServiceBusy

if TYPE_CHECKING:
    from redis import Redis

# A stream's place lasts this long unless the stream renews it (every third of it), so the
# places of a killed process's streams come back by themselves.
LEASE_SECONDS = 30

log = logging.getLogger(__name__)


class LiveFull(ServiceBusy):
    code = "live_streams_busy"
    default_message = "Too many streams are open for this live; trying again shortly."


class LiveStreamsLimit(DomainError):
    code = "live_streams_limit"
    status = 429
    default_message = (
        "Too many live streams are open from your network; close one or try again shortly."
    )


# Drops expired places, then takes one in both counts if both are below their caps.
# 0: taken; 1: the address is at its cap; 2: the live is at its cap.
_TAKE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 0
"""


class StreamLeases:
    """Open streams per client address and per (creator, live), shared by every process.

    In Redis (sorted sets of stream ids scored by when their lease ends) when the cache is
    django-redis; otherwise (``make run`` without Redis) counted in this process. With Redis
    unreachable it fails open, like the throttles: the per-process slots still bound it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local: dict[str, dict[str, float]] = {}

    @staticmethod
    def _redis() -> Redis | None:
        try:
            from django_redis import get_redis_connection

            redis: Redis = get_redis_connection("default")
            return redis
        except Exception:  # not django-redis: count in this process
            return None

    @staticmethod
    def _keys(address: str, creator_id: int, live_id: str) -> tuple[str, str]:
        from django.core.cache import cache

        return (
            cache.make_key(f"live-streams:addr:{address}"),
            cache.make_key(f"live-streams:live:{creator_id}:{live_id}"),
        )

    def take(self, *, address: str, creator_id: int, live_id: str) -> Lease:
        per_address = int(settings.LIVE_STREAMS_PER_ADDRESS)
        per_live = int(settings.LIVE_STREAMS_PER_LIVE)
        keys = self._keys(address, creator_id, live_id)
        member = uuid.uuid4().hex
        now = time.time()
        redis = self._redis()
        if redis is not None:
            try:
                verdict = int(
                    redis.eval(
                        _TAKE_SCRIPT,
                        2,
                        *keys,
                        now,
                        now + LEASE_SECONDS,
                        member,
                        per_address,
                        per_live,
                        LEASE_SECONDS * 2,
                    )
                )
            except Exception as exc:  # Redis down: fail open
                log.warning("live stream leases unavailable: %s", exc)
                return Lease(self, keys, member, redis=None, counted=False)
        else:
            with self.lock:
                sets = [self.local.setdefault(key, {}) for key in keys]
                for entries in sets:
                    for stale in [m for m, until in entries.items() if until <= now]:
                        del entries[stale]
                verdict = 1 if len(sets[0]) >= per_address else 2 if len(sets[1]) >= per_live else 0
                if verdict == 0:
                    for entries in sets:
                        entries[member] = now + LEASE_SECONDS
        if verdict == 1:
            error = LiveStreamsLimit()
            error.retry_after = int(min(settings.LIVE_STREAM_IDLE_SECONDS, 30)) or 1
            raise error
        if verdict == 2:
            raise LiveFull()
        return Lease(self, keys, member, redis=redis, counted=True)


class Lease:
    """One stream's place in the shared counts: renewed while it runs, given back once."""

    def __init__(
        self,
        leases: StreamLeases,
        keys: tuple[str, str],
        member: str,
        *,
        redis: Redis | None,
        counted: bool,
    ) -> None:
        self.leases, self.keys, self.member = leases, keys, member
        self.redis, self.counted = redis, counted
        self.renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if not self.counted or time.monotonic() - self.renewed < LEASE_SECONDS / 3:
            return
        self.renewed = time.monotonic()
        until = time.time() + LEASE_SECONDS
        if self.redis is None:
            with self.leases.lock:
                for key in self.keys:
                    entries = self.leases.local.get(key, {})
                    if self.member in entries:
                        entries[self.member] = until
            return
        try:
            pipe = self.redis.pipeline()
            for key in self.keys:
                pipe.zadd(key, {self.member: until}, xx=True)
                pipe.expire(key, LEASE_SECONDS * 2)
            pipe.execute()
        except Exception as exc:
            log.warning("live stream lease renewal failed: %s", exc)

    def release(self) -> None:
        if not self.counted:
            return
        self.counted = False
        if self.redis is None:
            with self.leases.lock:
                for key in self.keys:
                    self.leases.local.get(key, {}).pop(self.member, None)
            return
        try:
            for key in self.keys:
                self.redis.zrem(key, self.member)
        except Exception as exc:  # its lease runs out by itself
            log.warning("live stream lease release failed: %s", exc)


LEASES = StreamLeases()
