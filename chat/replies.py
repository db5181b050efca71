"""The reply engine: what owns a reply in progress.

A reply belongs to its room, not to the socket that asked: its task lives
here, so it goes on when the sender's tab closes. Here are the task, the
coalescer that paces its broadcasts, the Stop signal, the periodic save, and
the watchdog that recovers replies whose process died (its lease lapsed, see
chat.leases). On shutdown (chat.lifecycle) a reply saves all its text and ends.
"""

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from chat import leases, llm, observability, queue, rag, rendering, selectors, shutdown, usage
from chat.broadcast import (
    delta_send,
    message_broadcast_on_commit,
    message_key,
    reply_group,
    room_send,
    room_version_bump,
)
from chat.deltas import DeltaStream
from chat.models import Message, Room

logger = logging.getLogger(__name__)


def reply_recover_stale(*, room: Room | None = None) -> int:
    """Mark replies whose process died mid-stream as interrupted, and tell their tabs.

    A reply's owner holds a lease (chat.leases): once it has lapsed, the owner
    is gone. A reply with no owner recorded falls back to CHAT_STALE_AFTER
    without a save. The conditional UPDATE makes this safe to run from any
    number of processes at once. Returns how many it marked.
    """
    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    if room is not None:
        streaming = streaming.filter(room=room)
    rows = list(streaming.values_list("owner", "updated_at"))
    owners = {owner for owner, _ in rows if owner}
    # Unknown (Redis unreachable): no owner is taken for dead.
    alive = leases.owners_alive(owners) if owners else set()
    dead = set() if alive is None else owners - alive
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER)
    if not dead and not any(not owner and saved < cutoff for owner, saved in rows):
        return 0
    return _recover(streaming.filter(Q(owner__in=dead) | Q(owner="", updated_at__lt=cutoff)))


def reply_recover_orphans() -> int:
    """Mark this process's streaming replies interrupted: at exit, once its tasks are done."""
    return _recover(
        Message.objects.filter(status=Message.Status.STREAMING, owner=leases.PROCESS_ID)
    )


def _recover(stale: QuerySet[Message]) -> int:
    # The dead process may have broadcast this many updates after its last save;
    # jumping past them makes every tab accept the interrupted state.
    seq_margin = math.ceil(settings.CHAT_STALE_AFTER / settings.CHAT_STREAM_INTERVAL) + 1
    recovered = 0
    for message in stale:
        with transaction.atomic():
            if not stale.filter(pk=message.pk).update(
                status=Message.Status.INTERRUPTED,
                error=gettext_noop("The server stopped while writing this reply."),
                seq=F("seq") + seq_margin,
                updated_at=timezone.now(),
            ):
                continue  # another process got there first
            message.refresh_from_db()
            message_broadcast_on_commit(message)
            recovered += 1
    return recovered


_watchdogs: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def reply_watchdog_start() -> None:
    """Sweep for dead replies in the background, once per process (event loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _watchdogs:
        _watchdogs[loop] = loop.create_task(_watch_for_dead_replies(), name="reply-watchdog")


async def _watch_for_dead_replies() -> None:
    while True:
        try:
            await database_sync_to_async(reply_recover_stale)()
            await queue.queue_resume()
        except Exception:
            logger.warning("recovering stale replies failed", exc_info=True)
        await asyncio.sleep(leases.renew_interval())


# The set keeps a reference, or the event loop could drop a running task.
_reply_tasks: set[asyncio.Task[None]] = set()


def reply_start(*, room: Room, reply: Message, continuing: bool = False) -> asyncio.Task[None]:
    """Write `reply` in the background; `continuing` carries on from the text it has."""
    task = asyncio.create_task(
        _reply_generate(room=room, reply=reply, continuing=continuing), name=f"reply-{reply.pk}"
    )
    _reply_tasks.add(task)
    task.add_done_callback(_reply_tasks.discard)
    return task


def replies_writing() -> set[asyncio.Task[None]]:
    """The replies this event loop is writing."""
    loop = asyncio.get_running_loop()
    return {task for task in _reply_tasks if task.get_loop() is loop and not task.done()}


# Sent after the text kept when a reply is continued.
CONTINUE_PROMPT = (
    "Your reply above was cut off. Continue it exactly where it stopped: do not repeat "
    "anything and do not comment, write only the rest."
)


async def _reply_generate(*, room: Room, reply: Message, continuing: bool) -> None:
    observability.reply_started(room_id=room.pk, reply_id=reply.pk, model=llm.model_name())
    turns = await database_sync_to_async(selectors.room_history)(room=room, before=reply)
    # A "!" question is answered from the tax-law documents; the reply keeps its sources.
    turns, sources = await rag.turns_ground(turns=turns)
    if continuing and reply.content:
        turns += [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": CONTINUE_PROMPT},
        ]
    elif sources:
        reply.sources = sources
        await Message.objects.filter(pk=reply.pk).aupdate(sources=reply.sources)
    stream = _ReplyStream(room=room, reply=reply)
    async with _StopSignal(reply_id=reply.pk) as stop:
        reply.status, reply.error = await _generate(turns=turns, stream=stream, stop=stop)
    await stream.finish()
    observability.reply_finished(reply_id=reply.pk, outcome=reply.status)
    await queue.queue_after_reply(room=room)


async def _generate(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", stop: "_StopSignal"
) -> tuple[str, str]:
    """Stream the model's reply into `stream` until it ends, fails, is stopped or the
    process shuts down."""
    coalescer = _Coalescer(stream.publish, interval=_stream_interval)
    writing = asyncio.create_task(_write(turns=turns, stream=stream, coalescer=coalescer))
    saving = asyncio.create_task(stream.keep_saving())
    exiting = asyncio.create_task(shutdown.grace_over())
    try:
        await asyncio.wait(
            {writing, saving, stop.received, exiting}, return_when=asyncio.FIRST_COMPLETED
        )
        if writing.done():
            return writing.result()
        # Stopped by a tab, the row is gone (history cleared) or the process is
        # exiting: end the model's stream too, so it stops spending tokens.
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        if exiting.done():
            # Every token received so far is saved with the reply (stream.finish).
            return Message.Status.INTERRUPTED, gettext_noop(
                "The server stopped while writing this reply."
            )
        return Message.Status.STOPPED, ""
    finally:
        saving.cancel()
        exiting.cancel()
        await coalescer.close()


async def _write(
    *, turns: list[llm.ChatTurn], stream: "_ReplyStream", coalescer: "_Coalescer"
) -> tuple[str, str]:
    # The room's current model: its owner may have changed it since the tab connected.
    model, temperature = await selectors.room_model_settings(room=stream.room)
    stream.reply.model = llm.model_name(model=model)
    answer = llm.stream_reply(turns, model=model, temperature=temperature)
    try:
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
        usage_record(reply=stream.reply, usage=answer.usage)
    return Message.Status.COMPLETE, ""


def usage_record(*, reply: Message, usage: llm.Usage | None) -> None:
    """Put the server's token counts on the reply (saved with its final state); None is unknown."""
    reply.prompt_tokens = usage.prompt_tokens if usage else None
    reply.completion_tokens = usage.completion_tokens if usage else None


class _StopSignal:
    """The reply's own group on the channel layer: a Stop from any process reaches it."""

    def __init__(self, *, reply_id: int) -> None:
        self.group = reply_group(reply_id)
        self.layer = get_channel_layer()
        self.channel = ""
        # Set on entering: the Stop listener, or a wait that never ends.
        self.received: asyncio.Task[object]

    async def __aenter__(self) -> "_StopSignal":
        self.channel = await self.layer.new_channel()
        try:
            await self.layer.group_add(self.group, self.channel)
        except Exception:
            # Without the layer the reply still completes; Stop cannot reach it.
            logger.warning("cannot listen for Stop on %s", self.group, exc_info=True)
            self.received = asyncio.create_task(asyncio.Event().wait())
        else:
            self.received = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.received.cancel()
        with contextlib.suppress(Exception):
            await self.layer.group_discard(self.group, self.channel)

    async def _listen(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                logger.warning("lost the Stop listener on %s", self.group, exc_info=True)
                await asyncio.sleep(1)
                continue
            if event.get("type") == "reply.stop":
                return


def _stream_interval() -> float:
    """Seconds between two updates of a streaming reply: CHAT_STREAM_INTERVAL, or
    longer when so many replies stream in this process that together they would
    broadcast more than CHAT_STREAM_BUDGET updates a second. Each update is
    rendered and published once whatever the number of tabs, so that is what
    bounds a process's rooms (docs/benchmark.md, S6)."""
    return max(settings.CHAT_STREAM_INTERVAL, len(_reply_tasks) / settings.CHAT_STREAM_BUDGET)


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
        self._runner = asyncio.create_task(self._run())

    def mark(self) -> None:
        self._dirty.set()

    async def close(self) -> None:
        """Stop, letting a flush under way finish (the caller sends the final state)."""
        self._closing.set()
        self._dirty.set()
        await self._runner

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing.is_set():
                return
            self._dirty.clear()
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
        found = self.deltas.next(text=self.reply.content, seq=self.reply.seq)
        if found is None:
            await self._broadcast()
            return
        delta, finished = found
        if finished:
            # Saved before sent: a page loaded from the database then holds every
            # block a later delta builds on.
            await self._save()
        try:
            await delta_send(room_id=self.room.pk, message_id=self.reply.pk, frame=delta)
        except Exception:
            # Tabs miss this delta, not the reply: they repair from the database.
            logger.warning("delta of reply %s failed", self.reply.pk, exc_info=True)

    async def keep_saving(self) -> None:
        """Save the text so far every CHAT_SAVE_INTERVAL, as long as the row is ours.

        Each save bounds what a crash can lose, and is the heartbeat that tells
        recovery the reply is alive. Returns when the row was deleted or taken over.
        """
        while True:
            await asyncio.sleep(settings.CHAT_SAVE_INTERVAL)
            if not await self._save():
                return

    async def finish(self) -> None:
        self.reply.seq += 1
        if await database_sync_to_async(self._save_final)():
            await self._broadcast(final=True)

    def _save_final(self) -> bool:
        # The final state counts as a change to the room (Room.version): a tab
        # that was away when it came finds it on catching up.
        with transaction.atomic():
            if not self._mine().update(**self._fields(final=True)):
                return False
            self.reply.version = room_version_bump(
                room_id=self.room.pk, message_ids=[self.reply.pk]
            )
        return True

    async def _save(self) -> bool:
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
                html = {code: fragment + totals[code] for code, fragment in html.items()}
            await room_send(room_id=self.room.pk, html=html, key=message_key(self.reply))
        except Exception:
            # Tabs miss this update, not the reply: the database has it, and
            # pages ask for it (a streaming message fallen silent) or catch up on reconnect.
            logger.warning("broadcast of reply %s failed", self.reply.pk, exc_info=True)
