"""Who owns a turn: from its claimed placeholder to the next question.

A turn belongs to its room, not to the socket that asked: its task lives here,
so it goes on when the sender's tab closes. Read top to bottom, a turn is

    start    listen for Stop, before anything else (chat.turns.stop)
    history  the room as stored now (prompt, model) and the conversation before the reply
    rag      a "!" question's documents (chat.rag), then all of it fitted to the
             room's context window (chat.limits)
    stream   the model's answer, coalesced, broadcast and saved (chat.replies)
    end      the final state saved with a conditional UPDATE, then broadcast
    advance  the room's next queued question claimed and started

Every step runs under the supervisor: one that raises ends the turn as *error*,
its reason shown and Retry offered; the end is retried; and the next question
starts whatever happened. A Stop before the model was called ends the turn as
*Stopped* with no model call. If even the end cannot be saved, the watchdog's
local sweep (chat.turns.watchdog) ends the row, as it has no live task.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.utils.translation import gettext_noop

from chat import faults, limits, llm, observability, rag, replies, roomlist, selectors, shutdown
from chat.models import Message, Room
from chat.turns import claims
from chat.turns.stop import Stopped, StopSignal

logger = logging.getLogger(__name__)

# Sent after the text kept when a reply is continued.
CONTINUE_PROMPT = (
    "Your reply above was cut off. Continue it exactly where it stopped: do not repeat "
    "anything and do not comment, write only the rest."
)
SERVER_ERROR = gettext_noop("Something went wrong on the server.")
# Tries, and the pause before each retry, at saving a turn's end.
END_RETRIES = (0.1, 0.3, 1.0)

# Reply id → the turn writing it. The dict keeps a reference, or the event loop
# could drop a running task.
_turns: dict[int, asyncio.Task[None]] = {}
_signals: dict[int, StopSignal] = {}


def turn_start(*, room: Room, reply: Message, continuing: bool = False) -> asyncio.Task[None]:
    """Run the turn that writes `reply` (claimed already) in the background;
    `continuing` carries it on from the text it has."""
    # Registered now, so a Stop from this process counts even before the turn runs.
    stop = _signals[reply.pk] = StopSignal(reply_id=reply.pk)
    task = asyncio.create_task(
        _turn(room_id=room.pk, reply=reply, continuing=continuing, stop=stop),
        name=f"turn-{reply.pk}",
    )
    _turns[reply.pk] = task
    task.add_done_callback(lambda _: _forget(reply.pk, task, stop))
    return task


def _forget(reply_id: int, task: asyncio.Task[None], stop: StopSignal) -> None:
    # A regenerated reply keeps its id: a newer turn of it may be registered already.
    if _turns.get(reply_id) is task:
        del _turns[reply_id]
    if _signals.get(reply_id) is stop:
        del _signals[reply_id]


def turns_running() -> set[asyncio.Task[None]]:
    """The turns this event loop is running."""
    loop = asyncio.get_running_loop()
    return {task for task in _turns.values() if task.get_loop() is loop and not task.done()}


def turn_ids_running() -> set[int]:
    """The replies this process has a live turn for, on any event loop."""
    return {pk for pk, task in list(_turns.items()) if not task.done()}


def turn_stop_local(*, reply_id: int) -> bool:
    """Stop a turn of this process without the channel layer; False if it runs elsewhere."""
    signal = _signals.get(reply_id)
    if signal is None:
        return False
    signal.local.set()
    return True


async def _turn(*, room_id: int, reply: Message, continuing: bool, stop: StopSignal) -> None:
    observability.reply_started(room_id=room_id, reply_id=reply.pk, model=llm.model_name())
    # How the turn ends unless a step says otherwise: the reply shows it while it streams.
    ended: tuple[str, str] = (Message.Status.ERROR, SERVER_ERROR)
    room: Room | None = None
    try:
        async with stop:
            room = await stop.race(Room.objects.filter(pk=room_id).afirst())
            if room is None:
                return  # deleted: its reply went with it
            turns = await stop.race(_history(room=room, reply=reply, continuing=continuing))
            await replies.reply_write(room=room, reply=reply, turns=turns, stop=stop.received)
            ended = (reply.status, reply.error)
    except Stopped:
        ended = (Message.Status.STOPPED, "")
    except llm.ModelError as exc:
        ended = (Message.Status.ERROR, str(exc))
    except Exception:
        logger.exception("turn of reply %s failed", reply.pk)
    finally:
        reply.status, reply.error = ended
        # Unread (the first step failed), the room is known by its id alone.
        await _end(room=room or Room(pk=room_id), reply=reply)
        observability.reply_finished(reply_id=reply.pk, outcome=reply.status)
        await _advance(room_id=room_id)


async def _history(*, room: Room, reply: Message, continuing: bool) -> list[llm.ChatTurn]:
    """What the model is sent: the room's prompt and conversation, a "!" question's
    documents (kept on the reply as its sources), or the text to carry on; the
    oldest messages left out until it fits the room's context window."""
    faults.fault_point("history")
    turns = await database_sync_to_async(selectors.room_history)(room=room, before=reply)
    faults.fault_point("rag")
    turns, sources = await rag.turns_ground(turns=turns)
    if continuing and reply.content:
        turns += [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": CONTINUE_PROMPT},
        ]
    elif sources:
        reply.sources = sources
        await Message.objects.filter(pk=reply.pk).aupdate(sources=reply.sources)
    budget = limits.limits_prompt_budget(room=room)
    # Carrying a reply on, its text so far and the instruction to go on are the newest turns.
    keep = 2 if continuing and reply.content else 1
    return limits.context_fit(turns=turns, budget=budget, keep=keep)


async def _end(*, room: Room, reply: Message) -> None:
    for pause in END_RETRIES:
        try:
            await replies.reply_end(room=room, reply=reply)
            return
        except Exception:
            logger.warning("saving the end of reply %s failed", reply.pk, exc_info=True)
            await asyncio.sleep(pause)
    # The row stays streaming with no live turn: the local sweep ends it.


async def turn_advance(*, room_id: int) -> Message | None:
    """Start the reply to the room's next queued question, if the room is free.
    A process shutting down starts none: the question waits for another process."""
    if shutdown.draining():
        return None
    claimed = await database_sync_to_async(claims.claim_next)(room_id=room_id)
    if claimed is None:
        return None
    room, reply = claimed
    turn_start(room=room, reply=reply)
    return reply


async def _advance(*, room_id: int) -> None:
    """A turn ended: the room list drops its badge, and the next question starts."""
    try:
        await roomlist.room_changed_send(room_id=room_id)
    except Exception:
        # The lists catch up at the room's next change, or a reload.
        logger.warning("telling room %s's lists it is free failed", room_id, exc_info=True)
    try:
        faults.fault_point("advance")
        await turn_advance(room_id=room_id)
    except Exception:
        # The watchdog's sweep starts it within a moment.
        logger.warning("starting the next question in room %s failed", room_id, exc_info=True)
