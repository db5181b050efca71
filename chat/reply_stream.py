"""A reply as it grows: sent to every tab as deltas (chat.deltas), saved every
CHAT_SAVE_INTERVAL while its row is still this turn's, and, at its end, saved in its
final state with its charge settled (chat.budgets) and sent whole. chat.replies
writes the model's text into it.
"""

import asyncio
import contextlib
import logging
from typing import NamedTuple

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat import budgets, faults, limits, rendering, usage
from chat.broadcast import (
    delta_send,
    message_key,
    reply_asks_group,
    room_send,
    room_version_bump,
)
from chat.deltas import DeltaStream
from chat.models import Message, Room

logger = logging.getLogger(__name__)


class Ended(NamedTuple):
    """What a reply's final state is sent with: the room's token totals and where the
    model's memory now begins (None, None: they could not be read)."""

    room_usage: usage.RoomUsage | None
    context_start: int | None


class ReplyStream:
    """A growing reply: sent to every tab as deltas (chat.deltas), saved as it grows,
    and sent whole in its final state."""

    def __init__(self, *, room: Room, reply: Message) -> None:
        self.room, self.reply = room, reply
        self.deltas = DeltaStream(message_id=reply.pk)
        # The text and seq tabs were last sent. Saves store this pair, so a page
        # loaded from the database can take up the deltas that follow it.
        self.sent = (reply.content, reply.seq)

    async def publish(self) -> None:
        self.reply.seq += 1
        self.sent = (self.reply.content, self.reply.seq)
        delta = self.deltas.next(text=self.reply.content, seq=self.reply.seq)
        if delta is None:
            await self._broadcast()
            return
        try:
            await delta_send(room_id=self.room.pk, message_id=self.reply.pk, frame=delta)
        except Exception:
            # Tabs miss this delta, not the reply: they ask, and the next one repairs them.
            logger.warning("delta of reply %s failed", self.reply.pk, exc_info=True)

    async def hear_asks(self) -> None:
        """Make the next delta whole whenever a tab asked for the reply (it missed a
        delta, or loaded the page between two), from the blocks that tab holds: that
        takes it up again with no read of the database (chat.room_sync)."""
        layer = get_channel_layer()
        group = reply_asks_group(self.reply.pk)
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
        except Exception:
            # Pages still take up the stream at the next periodic whole tail.
            logger.warning("cannot listen for asks on %s", group, exc_info=True)
            return
        try:
            while True:
                try:
                    asked = await layer.receive(channel)
                except Exception:
                    logger.warning("lost the ask listener on %s", group, exc_info=True)
                    await asyncio.sleep(1)
                    continue
                seq = asked.get("seq")
                self.deltas.whole_next(seq=seq if isinstance(seq, int) else 0)
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)

    async def keep_saving(self) -> None:
        """Save the text so far every CHAT_SAVE_INTERVAL, as long as the row is ours.

        Each save bounds what a crash can lose, and is the heartbeat that tells
        recovery the reply is alive. Returns when the row was deleted or taken over.
        A save the database refuses is tried again at the next interval, with
        all the text by then: the reply goes on.
        """
        while True:
            await asyncio.sleep(settings.CHAT_SAVE_INTERVAL)
            try:
                if not await self._save():
                    return
            except Exception:
                logger.warning("saving reply %s failed; trying again", self.reply.pk, exc_info=True)

    async def finish(self) -> None:
        self.reply.seq += 1
        if (ended := await database_sync_to_async(self._save_final)()) is not None:
            await self._broadcast(final=ended)

    def _save_final(self) -> "Ended | None":
        """Save the final state if the row is still this turn's; then read, on the same
        trip to the database thread, what the tabs get with it."""
        # The final state counts as a change to the room (Room.version): a tab
        # that was away when it came finds it on catching up.
        faults.fault_point("finish")
        with transaction.atomic():
            # Settled whether or not the row is still ours: a deleted reply spent too.
            budgets.charge_settle(reply=self.reply)
            if not self._mine().update(**self._fields(final=True)):
                return None
            # The room's too: chat.limits.context_start reads it after this.
            self.room.version = self.reply.version = room_version_bump(
                room_id=self.room.pk, message_ids=[self.reply.pk]
            )
        try:
            return Ended(usage.room_usage(room=self.room), limits.context_start(room=self.room))
        except Exception:
            # The reply is saved; its tabs get it without the totals, which the next change brings.
            logger.warning("reading room %s's totals failed", self.room.pk, exc_info=True)
            return Ended(None, None)

    async def _save(self) -> bool:
        faults.fault_point("save")
        return bool(await self._mine().aupdate(**self._fields()))

    def _mine(self) -> QuerySet[Message]:
        return Message.objects.filter(pk=self.reply.pk, status=Message.Status.STREAMING)

    def _fields(self, *, final: bool = False) -> dict[str, object]:
        content, seq = (self.reply.content, self.reply.seq) if final else self.sent
        fields: dict[str, object] = {"content": content, "seq": seq, "updated_at": timezone.now()}
        if final:
            fields |= {
                "status": self.reply.status,
                "error": self.reply.error,
                "model": self.reply.model,
                "prompt_tokens": self.reply.prompt_tokens,
                "completion_tokens": self.reply.completion_tokens,
                "length_limited": self.reply.length_limited,
            }
        return fields

    async def _broadcast(self, *, final: "Ended | None" = None) -> None:
        try:
            html = rendering.messages_in_every_language(self.reply)
            if final is not None and final.room_usage is not None:
                # The room's token total, once for every tab, with the reply's final state.
                totals = rendering.in_every_language(
                    rendering.room_usage_oob, room=self.room, room_usage=final.room_usage
                )
                # And where the model's memory now begins, the same in every language.
                marker = rendering.context_start_oob(context_start=final.context_start)
                html = {code: fragment + totals[code] + marker for code, fragment in html.items()}
            await room_send(room_id=self.room.pk, html=html, key=message_key(self.reply))
        except Exception:
            # Tabs miss this update, not the reply: the database has it, and
            # pages ask for it (a streaming message fallen silent) or catch up on reconnect.
            logger.warning("broadcast of reply %s failed", self.reply.pk, exc_info=True)
