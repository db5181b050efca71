"""Open room sockets per user, counted across processes (CHAT_MAX_CONNECTIONS_PER_USER).

In Redis, a hash per user maps each process to how many of the user's sockets
it holds. A process's entry counts only while its lease key (chat.process,
renewed by chat.leases) lives: entries of a dead process are dropped as they
are counted, so a crash frees its sockets' places. Without Redis (one process)
the count is kept in memory. When Redis cannot be reached, sockets are let in
uncounted: the bound guards against floods, and refusing everyone would be worse.
"""

import logging
from collections import Counter
from typing import Any

from django.conf import settings

from chat.process import PROCESS_ID, lease_key
from chat.redis_url import redis_client

logger = logging.getLogger(__name__)

# KEYS: the user's hash. ARGV: this process, the bound, the lease key prefix, the hash's TTL.
_OPEN = """
local total = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local process = entries[i]
  if process ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. process) == 0 then
    redis.call('HDEL', KEYS[1], process)
  else
    total = total + tonumber(entries[i + 1])
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
_CLOSE = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
"""
# A user's hash outlives a quiet day only if a socket opens again.
_HASH_TTL = 86_400

_local: Counter[int] = Counter()


async def connection_open(*, user_id: int) -> bool:
    """Count one more socket for the user; False (nothing counted) if they are at the bound."""
    limit = settings.CHAT_MAX_CONNECTIONS_PER_USER
    if not settings.REDIS_URL:
        if _local[user_id] >= limit:
            return False
        _local[user_id] += 1
        return True
    args = (PROCESS_ID, limit, lease_key(""), _HASH_TTL)
    try:
        return bool(await _eval(_OPEN, 1, _key(user_id), *args))
    except Exception as exc:
        logger.warning("cannot count user %s's sockets (%r): letting this one in", user_id, exc)
        return True


async def connection_close(*, user_id: int) -> None:
    if not settings.REDIS_URL:
        _local[user_id] -= 1
        if _local[user_id] <= 0:
            del _local[user_id]
        return
    try:
        await _eval(_CLOSE, 1, _key(user_id), PROCESS_ID)
    except Exception as exc:
        logger.warning("cannot uncount a socket of user %s (%r)", user_id, exc)


def _key(user_id: int) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:connections:{user_id}"


async def _eval(script: str, keys: int, *args: Any) -> Any:
    # redis-py types eval() for its sync and async clients at once.
    client = redis_client(socket_timeout=1, socket_connect_timeout=1)
    result: Any = client.eval(script, keys, *args)
    return await result
