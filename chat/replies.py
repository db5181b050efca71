"""One reply, streamed: the model's deltas, coalesced, broadcast and saved as they come.

chat.turns.supervisor owns the turn around it (the claim, the history, the end,
the next question); here the model's stream is written into the reply until it
ends, fails, is stopped or the process shuts down, and `reply_write` says how
it ended. `reply_end` saves the final state and tells the tabs.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from chat import budgets, faults, limits, llm, observability, rendering, shutdown, usage
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

# Replies this process is streaming now: what CHAT_STREAM_BUDGET is shared by.
_streaming = 0


async def reply_write(
    *, room: Room, reply: Message, turns: list[llm.ChatTurn], stop: "asyncio.Task[object]"
) -> None:
    """Stream the model's answer to `turns` into `reply`; its status and error then say
    how it ended (complete, error, stopped or interrupted). The row is saved as it
    grows, not at the end: call reply_end."""
    global _streaming
    _streaming += 1
    try:
        stream = _ReplyStream(room=room, reply=reply)
        reply.status, reply.error = await _generate(turns=turns, stream=stream, stop=stop)
    finally:
        _streaming -= 1


async def reply_end(*, room: Room, reply: Message) -> None:
    """Save the reply's final state, if the row is still this turn's, and broadcast it."""
    await _ReplyStream(room=room, reply=reply).finish()


async def _generate(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", stop: "asyncio.Task[object]"
) -> tuple[str, str]:
    """Stream the model's reply into `stream` until it ends, fails, is stopped or the
    process shuts down."""
    coalescer = _Coalescer(stream.publish, interval=_stream_interval)
    writing = asyncio.create_task(_write(turns=turns, stream=stream, coalescer=coalescer))
    saving = asyncio.create_task(stream.keep_saving())
    asked = asyncio.create_task(stream.hear_asks())
    exiting = asyncio.create_task(shutdown.grace_over())
    try:
        await asyncio.wait({writing, saving, stop, exiting}, return_when=asyncio.FIRST_COMPLETED)
        if writing.done():
            return writing.result()
        # Stopped by a tab, the row is gone (history cleared) or the process is
        # exiting: end the model's stream too, so it stops spending tokens.
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        if exiting.done():
            # Every token received so far is saved with the reply (reply_end).
            return Message.Status.INTERRUPTED, gettext_noop(
                "The server stopped while writing this reply."
            )
        return Message.Status.STOPPED, ""
    finally:
        saving.cancel()
        asked.cancel()
        exiting.cancel()
        await coalescer.close()


async def _write(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", coalescer: "_Coalescer"
) -> tuple[str, str]:
    # The room as the turn read it when it started: its current model and temperature.
    room = stream.room
    stream.reply.model = llm.model_name(model=room.model)
    ceiling = limits.limits_reply_ceiling(room=room)
    answer = llm.stream_reply(
        turns, model=room.model, temperature=room.temperature, max_tokens=ceiling
    )
    try:
        faults.fault_point("model")
        async for delta in answer:
            stream.reply.content += delta
            observability.reply_token(reply_id=stream.reply.pk)
            coalescer.mark()
    except llm.ModelError as exc:
        observability.model_error(reply_id=stream.reply.pk, error=exc)
        return Message.Status.ERROR, str(exc)
    except Exception:
        logger.exception("reply %s failed", stream.reply.pk)
        return Message.Status.ERROR, gettext_noop("Something went wrong on the server.")
    finally:
        usage_record(reply=stream.reply, counts=answer.usage)
    # Cut at the reply ceiling: the reply says so, and Continue carries it on.
    stream.reply.length_limited = answer.finish_reason == "length"
    return Message.Status.COMPLETE, ""


def usage_record(*, reply: Message, counts: llm.Usage | None) -> None:
    """Put the server's token counts on the reply (saved with its final state); None is unknown."""
    reply.prompt_tokens = counts.prompt_tokens if counts else None
    reply.completion_tokens = counts.completion_tokens if counts else None
    if counts:
        usage.usage_count(model=reply.model, counts=counts)


def _stream_interval() -> float:
    """Seconds between two updates of a streaming reply: CHAT_STREAM_INTERVAL, or
    longer when so many replies stream in this process that together they would
    broadcast more than CHAT_STREAM_BUDGET updates a second. Each update is
    rendered and published once whatever the number of tabs, so that is what
    bounds a process's rooms (docs/benchmark.md, S6)."""
    return max(settings.CHAT_STREAM_INTERVAL, _streaming / settings.CHAT_STREAM_BUDGET)


class _Coalescer:
    """Runs `flush` at most once per `interval()` seconds while marks keep coming.

    The first mark flushes at once; marks during the pause are folded into one
    flush after it. Each flush sends what changed since the last, so folding loses nothing.
    """

    def __init__(
        self, flush: Callable[[], Awaitable[None]], *, interval: Callable[[], float]
    ) -> None:
        self._flush, self._interval = flush, interval
        self._dirty, self._closing = asyncio.Event(), asyncio.Event()
        self._pending = False  # marked since the last flush
        self._runner = asyncio.create_task(self._run())

    def mark(self) -> None:
        self._pending = True
        self._dirty.set()

    async def close(self) -> None:
        """Stop, letting a flush under way finish, then flush what is marked: else the
        last words wait for the final state's database write and renders (docs/benchmark.md)."""
        self._closing.set()
        self._dirty.set()
        await self._runner
        if self._pending:
            self._pending = False
            try:
                await self._flush()
            except Exception:
                logger.warning("the last update before the final state failed", exc_info=True)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing.is_set():
                return
            self._dirty.clear()
            self._pending = False
            await self._flush()
            try:
                await asyncio.wait_for(self._closing.wait(), self._interval())
                return
            except TimeoutError:
                pass


class _ReplyStream:
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
        if await database_sync_to_async(self._save_final)():
            await self._broadcast(final=True)

    def _save_final(self) -> bool:
        # The final state counts as a change to the room (Room.version): a tab
        # that was away when it came finds it on catching up.
        faults.fault_point("finish")
        with transaction.atomic():
            # Settled whether or not the row is still ours: a deleted reply spent too.
            budgets.charge_settle(reply=self.reply)
            if not self._mine().update(**self._fields(final=True)):
                return False
            self.reply.version = room_version_bump(
                room_id=self.room.pk, message_ids=[self.reply.pk]
            )
        return True

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

    async def _broadcast(self, *, final: bool = False) -> None:
        try:
            html = rendering.messages_in_every_language(self.reply)
            if final:
                # The room's token total, once for every tab, with the reply's final state.
                room_usage = await database_sync_to_async(usage.room_usage)(room=self.room)
                totals = rendering.in_every_language(
                    rendering.room_usage_oob, room=self.room, room_usage=room_usage
                )
                # And where the model's memory now begins, the same in every language.
                start = await database_sync_to_async(limits.context_start)(room=self.room)
                marker = rendering.context_start_oob(context_start=start)
                html = {code: fragment + totals[code] + marker for code, fragment in html.items()}
            await room_send(room_id=self.room.pk, html=html, key=message_key(self.reply))
        except Exception:
            # Tabs miss this update, not the reply: the database has it, and
            # pages ask for it (a streaming message fallen silent) or catch up on reconnect.
            logger.warning("broadcast of reply %s failed", self.reply.pk, exc_info=True)
