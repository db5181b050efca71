"""Per-user rate limit on model calls, counted in Redis so it holds across processes.

A fixed window per user: at most CHAT_RATE_LIMIT calls every CHAT_RATE_WINDOW
seconds. A send, an edit, Regenerate, Retry and Continue each count one, and a
"!" question one more for its search's embedding call (chat.turns.actions).
Without REDIS_URL (one local process) the count is kept in memory instead.
"""

import math
import time

from django.conf import settings

from chat.redis_url import redis_client

_local_counts: dict[str, int] = {}


async def message_rate_hit(*, user_id: int, calls: int = 1) -> float:
    """Count `calls` model calls; returns 0 if allowed, else the seconds until the next is."""
    window = settings.CHAT_RATE_WINDOW
    now = time.time()
    start = math.floor(now / window) * window
    key = f"{settings.CHAT_REDIS_PREFIX}:rate:{user_id}:{start}"
    count = await _increment(key, by=calls, expire=math.ceil(window))
    if count <= settings.CHAT_RATE_LIMIT:
        return 0.0
    return start + window - now


async def _increment(key: str, *, by: int, expire: int) -> int:
    if not settings.REDIS_URL:
        _local_counts[key] = _local_counts.get(key, 0) + by
        return _local_counts[key]
    async with redis_client().pipeline(transaction=True) as pipe:
        pipe.incrby(key, by)
        pipe.expire(key, expire)
        count, _ = await pipe.execute()
    return count
