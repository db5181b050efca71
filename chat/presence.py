"""Who has a room open now, across processes, and who is typing in it.

Each open room socket is an entry "<user id>:<channel name>" in a sorted set
per room in Redis, scored by when its process last vouched for it. Every
process refreshes its own sockets every quarter of CHAT_PRESENCE_TIMEOUT and
drops entries older than that, so the sockets of a process that died vanish
within the timeout, and the process that notices tells the room. Without
REDIS_URL (one process) the entries are kept in memory instead.

Presence and typing go to the room as events of their own ("chat.presence",
"chat.typing") carrying out-of-band fragments with stable ids.
"""

import asyncio
import logging
import time
from collections import defaultdict

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.template.loader import render_to_string

from chat import rendering, selectors
from chat.background import background_start
from chat.broadcast import fragment_event, room_group
from chat.redis_url import redis_client

logger = logging.getLogger(__name__)

# This process's open sockets: room id -> entries.
_local: defaultdict[int, set[str]] = defaultdict(set)
# Without Redis: room id -> entry -> last refresh; typing key -> when it may next be sent.
_memory: defaultdict[int, dict[str, float]] = defaultdict(dict)
_typing_memory: dict[str, float] = {}


def _entry(user_id: int, channel: str) -> str:
    return f"{user_id}:{channel}"


def _key(room_id: int) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:presence:{room_id}"


async def presence_join(*, room_id: int, user_id: int, channel: str) -> None:
    """A socket opened the room: store it and show the room who is here."""
    entry = _entry(user_id, channel)
    _local[room_id].add(entry)
    await _store(room_id, {entry})
    background_start("presence-heartbeat", _heartbeat)
    await presence_broadcast(room_id=room_id)


async def presence_leave(*, room_id: int, user_id: int, channel: str) -> None:
    entry = _entry(user_id, channel)
    _local[room_id].discard(entry)
    if not _local[room_id]:
        del _local[room_id]
    if settings.REDIS_URL:
        await redis_client().zrem(_key(room_id), entry)
    else:
        _memory[room_id].pop(entry, None)
    await presence_broadcast(room_id=room_id)


async def presence_user_ids(*, room_id: int) -> list[int]:
    """The users with the room open now, each once."""
    await _expire(room_id)
    if settings.REDIS_URL:
        entries = [e.decode() for e in await redis_client().zrange(_key(room_id), 0, -1)]
    else:
        entries = list(_memory[room_id])
    return list(dict.fromkeys(int(entry.split(":", 1)[0]) for entry in entries))


async def presence_has(*, room_id: int, user_id: int) -> bool:
    return user_id in await presence_user_ids(room_id=room_id)


async def presence_html(*, room_id: int) -> dict[str, str]:
    """The room header's #presence, in every language."""
    user_ids = await presence_user_ids(room_id=room_id)
    return await database_sync_to_async(_render)(user_ids)


def _render(user_ids: list[int]) -> dict[str, str]:
    users = get_user_model().objects.in_bulk(user_ids)
    people = sorted(
        (selectors.user_display_name(users[pk]) for pk in user_ids if pk in users),
        key=str.casefold,
    )
    return rendering.in_every_language(
        render_to_string, f"{rendering.ROOM_TEMPLATE}#presence", {"people": people, "oob": True}
    )


async def presence_broadcast(*, room_id: int) -> None:
    try:
        html = await presence_html(room_id=room_id)
        await get_channel_layer().group_send(
            room_group(room_id), fragment_event("chat.presence", html, key="presence")
        )
    except Exception:
        # Presence is a courtesy: the next change or sweep sends it again.
        logger.warning("presence of room %s was not sent", room_id, exc_info=True)


async def _store(room_id: int, entries: set[str]) -> None:
    now = time.time()
    if settings.REDIS_URL:
        key = _key(room_id)
        async with redis_client().pipeline(transaction=False) as pipe:
            pipe.zadd(key, dict.fromkeys(entries, now))
            # An idle room's set goes away on its own.
            pipe.expire(key, max(1, round(settings.CHAT_PRESENCE_TIMEOUT * 3)))
            await pipe.execute()
    else:
        _memory[room_id].update(dict.fromkeys(entries, now))


async def _expire(room_id: int) -> int:
    """Drop entries no process has refreshed within the timeout; returns how many."""
    cutoff = time.time() - settings.CHAT_PRESENCE_TIMEOUT
    if settings.REDIS_URL:
        return await redis_client().zremrangebyscore(_key(room_id), "-inf", cutoff)
    stale = [entry for entry, seen in _memory[room_id].items() if seen < cutoff]
    for entry in stale:
        del _memory[room_id][entry]
    return len(stale)


async def _heartbeat() -> None:
    """Vouch for this process's sockets, and tell rooms whose other entries expired."""
    while True:
        await asyncio.sleep(settings.CHAT_PRESENCE_TIMEOUT / 4)
        for room_id, entries in list(_local.items()):
            try:
                await _store(room_id, set(entries))
                if await _expire(room_id):
                    await presence_broadcast(room_id=room_id)
            except Exception:
                logger.warning("presence heartbeat for room %s failed", room_id, exc_info=True)


def _typing_key(room_id: int, user_id: int) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:typing:{room_id}:{user_id}"


async def typing_hit(*, room_id: int, user_id: int) -> bool:
    """Count a typing event: True if it may go to the room, False within the throttle."""
    interval = settings.CHAT_TYPING_INTERVAL
    key = _typing_key(room_id, user_id)
    if settings.REDIS_URL:
        return bool(await redis_client().set(key, 1, nx=True, px=max(1, round(interval * 1000))))
    now = time.monotonic()
    if _typing_memory.get(key, 0) > now:
        return False
    _typing_memory[key] = now + interval
    return True


async def typing_reset(*, room_id: int, user_id: int) -> None:
    """`user_id` sent a message, which ended their notice: their next keystroke is news
    again, as the page resets its own throttle."""
    key = _typing_key(room_id, user_id)
    try:
        if settings.REDIS_URL:
            await redis_client().delete(key)
        else:
            _typing_memory.pop(key, None)
    except Exception:
        # The message is saved whatever happens here; the notice waits out the throttle.
        logger.warning("could not reset the typing throttle in room %s", room_id, exc_info=True)


async def typing_send(*, room_id: int, user: User) -> bool:
    """Tell the room's other people that `user` is typing, unless throttled."""
    if not await typing_hit(room_id=room_id, user_id=user.pk):
        return False
    context = {"typist": user.pk, "name": selectors.user_display_name(user)}
    html = rendering.in_every_language(
        render_to_string, f"{rendering.ROOM_TEMPLATE}#typing", context
    )
    await get_channel_layer().group_send(
        room_group(room_id),
        fragment_event("chat.typing", html, user_id=user.pk, key=f"typing-{user.pk}"),
    )
    return True
