"""One reply, streamed: the model's deltas, coalesced, broadcast and saved as they come.

chat.turns.supervisor owns the turn around it (the claim, the history, the end,
the next question); here the model's stream is written into the reply until it
ends, fails, is stopped or the process shuts down, and `reply_write` says how
it ended. `reply_end` saves the final state and tells the tabs. What is saved and
sent as the reply grows, and at its end, is chat.reply_stream's.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.utils.translation import gettext_noop

from chat import faults, limits, llm, observability, shutdown, usage
from chat.model_stream import Usage
from chat.models import Message, Room
from chat.reply_stream import ReplyStream

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
        stream = ReplyStream(room=room, reply=reply)
        reply.status, reply.error = await _generate(turns=turns, stream=stream, stop=stop)
    finally:
        _streaming -= 1


async def reply_end(*, room: Room, reply: Message) -> None:
    """Save the reply's final state, if the row is still this turn's, and broadcast it."""
    await ReplyStream(room=room, reply=reply).finish()


async def _generate(
    *, turns: list[llm.ChatTurn], stream: ReplyStream, stop: "asyncio.Task[object]"
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
    *, turns: list[llm.ChatTurn], stream: ReplyStream, coalescer: "_Coalescer"
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


def usage_record(*, reply: Message, counts: Usage | None) -> None:
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
