"""What a tab may ask of a room's turns: send, edit, regenerate, continue, stop, cancel.

Each runs at the moment of the action: the rate limit (every model call counts,
a "!" question's search too) and the drain first, then
one transition of chat.turns.claims, which checks the user's authority and
reads the room's settings in its own transaction; then the supervisor runs the
turn it claimed. When nothing changed, each raises a chat.turns.refusals.Refused
saying why, or one of chat.authority's exceptions when the user may no longer
act in the room.
"""

import uuid

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError

from chat import rag, ratelimit, selectors, shutdown
from chat.broadcast import reply_stop
from chat.models import Message
from chat.turns import claims, rewrites, supervisor
from chat.turns.refusals import RateLimited, ServerRestarting


async def message_send(
    *, room_id: int, author: AbstractBaseUser, content: str, client_id: uuid.UUID | None = None
) -> Message:
    """Save a user's message; start the room's reply to it, or queue it behind the one
    streaming. People are never refused for a reply in progress.

    In a "mentioned" room a message not addressed to the AI is saved and shown only.
    While this process shuts down a question is queued, for the next live process
    to answer. Raises RateLimited or QueueFull, with nothing saved.

    A `client_id` the author already sent in this room returns that message:
    nothing new is saved or answered (the one_message_per_client_id constraint
    holds across processes).
    """
    if client_id is not None and (sent := await _sent(room_id, author.pk, client_id)):
        return sent
    await _rate_check(user_id=author.pk, content=content)
    try:
        room, message, reply = await database_sync_to_async(claims.claim)(
            room_id=room_id,
            author_id=author.pk,
            content=content,
            may_start=not shutdown.draining(),
            client_id=client_id,
        )
    except IntegrityError:
        # The same send, saved by another process a moment ago.
        if client_id is None or not (sent := await _sent(room_id, author.pk, client_id)):
            raise
        return sent
    if reply is not None:
        supervisor.turn_start(room=room, reply=reply)
    elif message.status == Message.Status.QUEUED:
        # The reply ahead may have ended while this was being saved.
        await supervisor.turn_advance(room_id=room_id)
    return message


async def _rate_check(*, user_id: int, content: str) -> None:
    """Count the model calls answering `content` takes: the reply, and a "!"
    question's embedding. Raises RateLimited when over the limit."""
    calls = 1 + rag.question_searches(content=content)
    if retry_after := await ratelimit.message_rate_hit(user_id=user_id, calls=calls):
        raise RateLimited(retry_after)


@database_sync_to_async
def _last_question(room_id: int) -> str:
    return selectors.room_last_question(room_id=room_id)


@database_sync_to_async
def _sent(room_id: int, author_id: int, client_id: uuid.UUID) -> Message | None:
    return selectors.message_by_client_id(room_id=room_id, author_id=author_id, client_id=client_id)


async def message_edit(
    *, room_id: int, author: AbstractBaseUser, message_id: int, content: str
) -> Message | None:
    """Change the room's last user message, the author's own, and answer it again
    when it is addressed to the AI; returns the reply being written, if any."""
    if shutdown.draining():
        raise ServerRestarting
    await _rate_check(user_id=author.pk, content=content)
    room, reply = await database_sync_to_async(rewrites.edit)(
        room_id=room_id, user_id=author.pk, message_id=message_id, content=content
    )
    if reply is not None:
        supervisor.turn_start(room=room, reply=reply)
    return reply


async def reply_regenerate(*, room_id: int, user: AbstractBaseUser) -> Message:
    """Write the room's last reply again (also the Retry after an error)."""
    if shutdown.draining():
        raise ServerRestarting
    await _rate_check(user_id=user.pk, content=await _last_question(room_id))
    room, reply = await database_sync_to_async(rewrites.restart)(room_id=room_id, user_id=user.pk)
    supervisor.turn_start(room=room, reply=reply)
    return reply


async def reply_continue(*, room_id: int, user: AbstractBaseUser, message_id: int) -> Message:
    """Carry an interrupted or stopped reply, the room's last message, on from its text."""
    if shutdown.draining():
        raise ServerRestarting
    await _rate_check(user_id=user.pk, content=await _last_question(room_id))
    room, reply = await database_sync_to_async(rewrites.resume)(
        room_id=room_id, user_id=user.pk, message_id=message_id
    )
    supervisor.turn_start(room=room, reply=reply, continuing=True)
    return reply


async def reply_stop_ask(*, room_id: int, user: AbstractBaseUser, message_id: int) -> None:
    """Stop the room's reply in progress, whichever process writes it."""
    await database_sync_to_async(claims.streaming)(
        room_id=room_id, user_id=user.pk, message_id=message_id
    )
    if not supervisor.turn_stop_local(reply_id=message_id):
        await reply_stop(reply_id=message_id)


async def queue_cancel(*, room_id: int, user: AbstractBaseUser, message_id: int) -> None:
    """Take the user's own question out of the AI's queue."""
    await database_sync_to_async(claims.cancel)(
        room_id=room_id, user_id=user.pk, message_id=message_id
    )
