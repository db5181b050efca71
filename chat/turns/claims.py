"""A turn's transitions in the database, one transaction each.

Each asks chat.authority, in its own transaction, whether the user may still act
in the room, and takes the room's settings as stored now; makes one conditional
write; and leaves its broadcasts to after the commit (chat.broadcast). None
starts anything: chat.turns.supervisor runs what these claim.

- claim: a question and its reply's placeholder, or the question queued;
- claim_next: the room's oldest queued question, once the room is free;
- (chat.turns.rewrites: a reply written again: Regenerate, Edit, Continue);
- end_stale: streaming replies nobody is writing any more, marked as ended.

The placeholder claims the room: a second streaming reply fails the
one_streaming_reply_per_room constraint, in any process. Each claim of a reply
also reserves its cost in the budgets (chat.budgets), in the same transaction.
"""

import math
import uuid
from collections.abc import Collection
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from chat import budgets, faults, leases, mentions, roomlist, selectors
from chat.authority import room_for_action
from chat.broadcast import message_broadcast_on_commit, queue_changed_on_commit
from chat.models import Message, Room
from chat.turns import refusals


def claim(
    *, room_id: int, author_id: int, content: str, may_start: bool, client_id: uuid.UUID | None
) -> tuple[Room, Message, Message | None]:
    """Save a question: with its reply's placeholder when the room is free, queued
    behind the reply streaming, or alone when it is not addressed to the AI."""
    faults.fault_point("claim")
    with transaction.atomic():
        room = room_for_action(room_id=room_id, user_id=author_id)
        roomlist.room_changed_on_commit(room=room)
        if not selectors.message_addressed(room=room, content=content):
            message = _question(
                room=room, author_id=author_id, content=content, client_id=client_id
            )
            message_broadcast_on_commit(message)
            return room, message, None
        waiting = room.messages.filter(status=Message.Status.QUEUED).count()
        if not waiting and may_start:
            try:
                with transaction.atomic():
                    message = _question(
                        room=room, author_id=author_id, content=content, client_id=client_id
                    )
                    reply = placeholder_create(room=room)
                    budgets.charge_reserve(room=room, reply=reply, asker_id=author_id)
            except IntegrityError:
                pass  # a reply is streaming: wait behind it
            except budgets.Spent as spent:
                # People can still talk: the question is saved and shown, unanswered.
                message = _question(
                    room=room, author_id=author_id, content=content, client_id=client_id
                )
                budgets.question_skip(question=message, spent=spent)
                message_broadcast_on_commit(message)
                return room, message, None
            else:
                message_broadcast_on_commit(message, reply)
                return room, message, reply
        if waiting >= settings.CHAT_QUEUE_LIMIT:
            raise refusals.QueueFull
        message = _question(
            room=room,
            author_id=author_id,
            content=content,
            status=Message.Status.QUEUED,
            client_id=client_id,
        )
        queue_changed_on_commit(room_id=room.pk)
    return room, message, None


def claim_next(*, room_id: int) -> tuple[Room, Message] | None:
    """Claim the room for its oldest queued question, if the room is free. A question
    whose asker's budget (or the room's) is spent is skipped, and the next one tried."""
    faults.fault_point("claim")
    try:
        with transaction.atomic():
            # Serialises this room's queue decisions (a row lock on PostgreSQL).
            room = Room.objects.select_for_update().filter(pk=room_id).first()
            if room is None or room.messages.filter(status=Message.Status.STREAMING).exists():
                return None
            queued = room.messages.filter(status=Message.Status.QUEUED).order_by("pk")
            if (waiting := queued.first()) is None:
                return None
            queue_changed_on_commit(room_id=room_id)
            roomlist.room_changed_on_commit(room=room)
            while waiting is not None:
                # Answered now, so it moves to the end of the conversation, just
                # before its reply: the page and the model see question, then answer.
                waiting.delete()
                question = _question(
                    room=room,
                    author_id=waiting.author_id,
                    content=waiting.content,
                    client_id=waiting.client_id,
                )
                try:
                    with transaction.atomic():
                        reply = placeholder_create(room=room)
                        budgets.charge_reserve(room=room, reply=reply, asker_id=question.author_id)
                except budgets.Spent as spent:
                    budgets.question_skip(question=question, spent=spent)
                    message_broadcast_on_commit(question)
                    waiting = queued.first()
                    continue
                message_broadcast_on_commit(question, reply)
                return room, reply
    except IntegrityError:
        return None  # another process started a reply first
    return None  # every question waiting was skipped


def cancel(*, room_id: int, user_id: int, message_id: int) -> None:
    """Take the author's own question out of the queue."""
    with transaction.atomic():
        room = room_for_action(room_id=room_id, user_id=user_id)
        deleted, _rows = Message.objects.filter(
            pk=message_id, room=room, author_id=user_id, status=Message.Status.QUEUED
        ).delete()
        if not deleted:
            raise refusals.NotQueued
        queue_changed_on_commit(room_id=room.pk)


def streaming(*, room_id: int, user_id: int, message_id: int) -> None:
    """Raise NotStreaming unless `message_id` is this room's reply in progress (for Stop)."""
    with transaction.atomic():
        room = room_for_action(room_id=room_id, user_id=user_id, lock=False)
        if not room.messages.filter(pk=message_id, status=Message.Status.STREAMING).exists():
            raise refusals.NotStreaming


def end_stale(*, rows: Collection[tuple[int, datetime | None]], error: str) -> int:
    """Mark these streaming replies interrupted, each only if it was not saved or
    claimed again since `updated_at` (None: whenever), and tell their tabs.

    The conditional UPDATE makes this safe from any number of processes at once.
    """
    # The owner may have broadcast this many updates after its last save;
    # jumping past them makes every tab accept the ended state.
    seq_margin = math.ceil(settings.CHAT_STALE_AFTER / settings.CHAT_STREAM_INTERVAL) + 1
    ended = 0
    for pk, updated_at in rows:
        unchanged = Q() if updated_at is None else Q(updated_at=updated_at)
        with transaction.atomic():
            if not Message.objects.filter(unchanged, pk=pk, status=Message.Status.STREAMING).update(
                status=Message.Status.INTERRUPTED,
                error=error,
                seq=F("seq") + seq_margin,
                updated_at=timezone.now(),
            ):
                continue  # another process got there first, or the turn is alive
            reply = Message.objects.get(pk=pk)
            budgets.charge_settle(reply=reply)
            message_broadcast_on_commit(reply)
            ended += 1
    return ended


def _question(
    *,
    room: Room,
    author_id: int | None,
    content: str,
    status: str = Message.Status.COMPLETE,
    client_id: uuid.UUID | None = None,
) -> Message:
    message = Message.objects.create(
        room=room,
        author_id=author_id,
        role=Message.Role.USER,
        content=content,
        status=status,
        client_id=client_id,
    )
    # In the message's own transaction: its mentions are saved, or neither is.
    mentions.mentions_save(message=message)
    return message


def placeholder_create(*, room: Room) -> Message:
    return Message.objects.create(
        room=room,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        owner=leases.PROCESS_ID,
    )
