"""Which server processes are alive: each holds a lease, a heartbeat with a short TTL.

A process is named by chat.process.PROCESS_ID. With Redis the lease is a key
(chat.process.lease_key) that expires CHAT_LEASE_TTL seconds after its last
renewal; without Redis (one process) it is a row in chat_processlease.

When it cannot tell whether a process is alive, this module says so (None), and
callers leave that process's replies alone: recovering a live process's reply
would cut it short.
"""

import asyncio
import logging
from collections.abc import Awaitable, Collection
from datetime import timedelta
from typing import Any, cast

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from chat.background import background_start, background_stop
from chat.models import ProcessLease
from chat.process import PROCESS_ID, lease_key
from chat.redis_url import redis_client

logger = logging.getLogger(__name__)

# Short timeouts: a renewal or check that waits longer would be too late anyway.
_TIMEOUTS = {"socket_timeout": 1, "socket_connect_timeout": 1}

# One round trip: the age of the lease keyspace (Redis time, in ms, since the
# epoch key was first written) and whether each lease exists. A young keyspace
# (Redis restarted or flushed) has lost every lease, so absences prove nothing yet.
_CHECK_LEASES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], now, 'NX')
local age = now - tonumber(redis.call('GET', KEYS[1]))
local alive = {}
for i = 2, #KEYS do alive[i - 1] = redis.call('EXISTS', KEYS[i]) end
return {age, alive}
"""


def renew_interval() -> float:
    """How often a lease is renewed, and how often processes look for lapsed ones."""
    return settings.CHAT_LEASE_TTL / 4


_renew_failing = False


async def lease_start() -> None:
    """Hold this process's lease from now on (once per event loop).

    The first renewal is awaited, so no reply is recorded under an owner that
    other processes would see as dead.
    """
    if background_start("lease", _keep_renewing):
        await _renew()


async def lease_release() -> None:
    """Give the lease up at once (a clean shutdown), so no one waits for it to lapse."""
    await background_stop("lease")
    try:
        if settings.REDIS_URL:
            await redis_client(**_TIMEOUTS).delete(lease_key(PROCESS_ID))
        else:
            await ProcessLease.objects.filter(process=PROCESS_ID).adelete()
    except Exception:
        logger.warning("could not release this process's lease", exc_info=True)


async def _keep_renewing() -> None:
    while True:
        await asyncio.sleep(renew_interval())
        await _renew()


async def _renew() -> None:
    global _renew_failing
    try:
        if settings.REDIS_URL:
            ttl_ms = int(settings.CHAT_LEASE_TTL * 1000)
            await redis_client(**_TIMEOUTS).set(lease_key(PROCESS_ID), "1", px=ttl_ms)
        else:
            await database_sync_to_async(_renew_row)()
    except Exception as exc:
        if not _renew_failing:
            logger.warning(
                "cannot renew the lease of process %s (%r): other processes may soon "
                "take its replies as interrupted",
                PROCESS_ID,
                exc,
            )
        _renew_failing = True
    else:
        if _renew_failing:
            logger.info("the lease of process %s is renewed again", PROCESS_ID)
        _renew_failing = False


def _renew_row() -> None:
    now = timezone.now()
    ProcessLease.objects.update_or_create(process=PROCESS_ID, defaults={"renewed_at": now})
    # A lapsed lease means a dead process whatever its row says: forget it.
    ProcessLease.objects.filter(
        renewed_at__lt=now - timedelta(seconds=settings.CHAT_LEASE_TTL)
    ).delete()


_check_failing = False


async def owners_alive(owners: Collection[str]) -> set[str] | None:
    """Which of these processes hold a live lease; None when that cannot be known.

    This process always counts as alive. Redis is asked from the event loop: a
    blocking call would hold up the database thread every consumer shares.
    """
    global _check_failing
    others = sorted(set(owners) - {PROCESS_ID})
    try:
        if settings.REDIS_URL:
            alive = await _alive_in_redis(others)
        else:
            alive = await database_sync_to_async(_alive_in_database)(others)
    except Exception as exc:
        if not _check_failing:
            logger.warning(
                "cannot check other processes' leases (%r): their replies are left "
                "alone until it can",
                exc,
            )
        _check_failing = True
        return None
    _check_failing = False
    return None if alive is None else alive | ({PROCESS_ID} & set(owners))


async def _alive_in_redis(processes: list[str]) -> set[str] | None:
    if not processes:
        return set()
    keys = [f"{settings.CHAT_REDIS_PREFIX}:lease-epoch", *map(lease_key, processes)]
    # redis-py types eval() for its sync and async clients at once.
    checked: Any = await cast(
        Awaitable[Any], redis_client(**_TIMEOUTS).eval(_CHECK_LEASES, len(keys), *keys)
    )
    age_ms, exists = checked
    if age_ms < settings.CHAT_LEASE_TTL * 1000:
        return None
    return {process for process, found in zip(processes, exists, strict=True) if found}


def _alive_in_database(processes: list[str]) -> set[str]:
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_LEASE_TTL)
    return set(
        ProcessLease.objects.filter(process__in=processes, renewed_at__gte=cutoff).values_list(
            "process", flat=True
        )
    )
