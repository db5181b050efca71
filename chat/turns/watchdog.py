"""The watchdog: replies nobody is writing any more, and questions nobody started.

Each process sweeps every quarter of CHAT_LEASE_TTL:

- a streaming reply whose owner's lease lapsed (chat.leases) is marked
  *interrupted*; one with no owner recorded, once unsaved for CHAT_STALE_AFTER;
- a streaming reply this process owns but has no live turn for (its end could
  not be saved, or it was claimed and never started) is marked *interrupted*
  too: the local sweep, so a live process never leaves a room busy;
- a room with questions waiting and no reply streaming starts the next one.

Idle, a sweep is two indexed queries (chat_message's status index). Redis is
asked from the event loop, never from the database thread every consumer shares.
"""

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop

from chat import leases
from chat.background import background_start
from chat.models import Message
from chat.turns import claims, supervisor

logger = logging.getLogger(__name__)

INTERRUPTED = gettext_noop("The server stopped while writing this reply.")
# A reply claimed this recently may not have its turn yet.
LOCAL_GRACE = timedelta(seconds=2)


async def turns_recover(*, room_id: int | None = None) -> int:
    """End the streaming replies nobody is writing any more; returns how many."""
    rows = await database_sync_to_async(_streaming_rows)(room_id=room_id)
    if not rows:
        return 0
    now = timezone.now()
    owners = {owner for _pk, owner, _saved in rows if owner}
    # Unknown (Redis unreachable): no other owner is taken for dead.
    alive = await leases.owners_alive(owners) if owners else set()
    dead = set() if alive is None else owners - alive
    running = supervisor.turn_ids_running()
    stale_before = now - timedelta(seconds=settings.CHAT_STALE_AFTER)
    ended = [
        (pk, saved)
        for pk, owner, saved in rows
        if owner in dead
        or (not owner and saved < stale_before)
        or (owner == leases.PROCESS_ID and pk not in running and saved < now - LOCAL_GRACE)
    ]
    if not ended:
        return 0
    # Conditional on the row being as read: a reply saved or continued meanwhile is alive.
    return await database_sync_to_async(claims.end_stale)(rows=ended, error=INTERRUPTED)


async def turns_orphans_end() -> int:
    """At exit, once its turns are done: this process's streaming replies, interrupted."""
    pks = await database_sync_to_async(_own_streaming)()
    rows = [(pk, None) for pk in pks]
    return await database_sync_to_async(claims.end_stale)(rows=rows, error=INTERRUPTED)


async def queues_resume() -> int:
    """Start the next question of every room that has questions waiting and no reply
    streaming: after a restart, a failed advance, or a reply whose process died."""
    started = 0
    for room_id in await database_sync_to_async(_rooms_to_resume)():
        if await supervisor.turn_advance(room_id=room_id):
            started += 1
    return started


def watchdog_start() -> None:
    """Sweep in the background, once per process (event loop)."""
    background_start("turn-watchdog", _watch)


async def _watch() -> None:
    while True:
        try:
            await turns_recover()
            await queues_resume()
        except Exception:
            logger.warning("the turn watchdog's sweep failed", exc_info=True)
        await asyncio.sleep(leases.renew_interval())


def _streaming_rows(*, room_id: int | None) -> list[tuple[int, str, object]]:
    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    if room_id is not None:
        streaming = streaming.filter(room_id=room_id)
    return list(streaming.order_by().values_list("pk", "owner", "updated_at"))


def _own_streaming() -> list[int]:
    return list(
        Message.objects.filter(status=Message.Status.STREAMING, owner=leases.PROCESS_ID)
        .order_by()
        .values_list("pk", flat=True)
    )


def _rooms_to_resume() -> list[int]:
    streaming = Message.objects.filter(status=Message.Status.STREAMING).values("room_id")
    return list(
        Message.objects.filter(status=Message.Status.QUEUED)
        .exclude(room_id__in=streaming)
        .order_by()  # Meta.ordering would add pk to the DISTINCT
        .values_list("room_id", flat=True)
        .distinct()
    )
