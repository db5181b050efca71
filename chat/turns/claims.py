"""A turn's transitions in the database, one transaction each.

Each asks chat.authority, in its own transaction, whether the user may still act
in the room, and takes the room's settings as stored now; makes one conditional
write; and leaves its broadcasts to after the commit (chat.broadcast). None
starts anything: chat.turns.supervisor runs what these claim.

- claim: a question and its reply's placeholder, or the question queued;
- claim_next: the room's oldest queued question, once the room is free;
- restart: the room's last reply, emptied to be written again (Regenerate, Edit);
- resume: an interrupted or stopped last reply, streaming again (Continue);
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
from django.db.models import Exists, F, OuterRef, Q
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
                    reply = _placeholder(room=room)
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
                        reply = _placeholder(room=room)
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


def restart(*, room_id: int, user_id: int) -> tuple[Room, Message]:
    """The room's last reply, emptied to be written again (Regenerate, and Retry)."""
    try:
        with transaction.atomic():
            room = room_for_action(room_id=room_id, user_id=user_id)
            # Questions waiting come first; a newer message (queued too) keeps this one put.
            last = room.messages.exclude(status=Message.Status.QUEUED).last()
            if last is None or last.role != Message.Role.ASSISTANT:
                raise refusals.NothingToRegenerate
            if not _restarted(last):
                raise refusals.RoomBusy
            _reserve(room=room, reply=last, user_id=user_id)
            message_broadcast_on_commit(last)
    except IntegrityError as exc:
        raise refusals.RoomBusy from exc
    return room, last


def edit(
    *, room_id: int, user_id: int, message_id: int, content: str
) -> tuple[Room, Message | None]:
    """The room's last user message takes new text; its reply is written again if the
    new text is addressed to the AI. Returns the reply to write, if any."""
    try:
        with transaction.atomic():
            room = room_for_action(room_id=room_id, user_id=user_id)
            message = room.messages.filter(pk=message_id, role=Message.Role.USER).first()
            if message is None or message.author_id != user_id:
                raise refusals.NotYourMessage
            if room.messages.filter(role=Message.Role.USER, pk__gt=message.pk).exists():
                raise refusals.EditRefused
            reply = room.messages.filter(pk__gt=message.pk).first()
            if reply is not None and reply.is_streaming:
                raise refusals.BusyEditing
            if not selectors.message_addressed(room=room, content=content):
                reply = None  # people's conversation: the AI is not called in
            elif reply is None:
                reply = _placeholder(room=room)
            elif not _restarted(reply):
                raise refusals.BusyEditing
            Message.objects.filter(pk=message.pk).update(
                content=content, seq=F("seq") + 1, updated_at=timezone.now(), skipped_for=None
            )
            message.refresh_from_db()
            if reply is not None:
                _reserve(room=room, reply=reply, user_id=user_id)
            mentions.mentions_save(message=message, edited=True)
            message_broadcast_on_commit(*(m for m in (message, reply) if m is not None))
    except IntegrityError as exc:
        raise refusals.BusyEditing from exc
    return room, reply


def resume(*, room_id: int, user_id: int, message_id: int) -> tuple[Room, Message]:
    """An interrupted or stopped reply, or one cut at the reply ceiling, the room's last
    message, streams again from its text."""
    try:
        with transaction.atomic():
            room = room_for_action(room_id=room_id, user_id=user_id)
            newer = Message.objects.filter(room=room, pk__gt=OuterRef("pk"))
            resumed = (
                Message.objects.filter(
                    Q(status__in=[Message.Status.INTERRUPTED, Message.Status.STOPPED])
                    | Q(status=Message.Status.COMPLETE, length_limited=True),
                    pk=message_id,
                    room=room,
                    role=Message.Role.ASSISTANT,
                )
                .filter(~Exists(newer))
                .update(
                    status=Message.Status.STREAMING,
                    owner=leases.PROCESS_ID,
                    error="",
                    length_limited=None,
                    seq=F("seq") + 1,
                    updated_at=timezone.now(),
                )
            )
            if not resumed:
                raise refusals.NothingToContinue
            reply = Message.objects.get(pk=message_id)
            _reserve(room=room, reply=reply, user_id=user_id)
            message_broadcast_on_commit(reply)
    except IntegrityError as exc:
        raise refusals.RoomBusy from exc
    return room, reply


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


def _placeholder(*, room: Room) -> Message:
    return Message.objects.create(
        room=room,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        owner=leases.PROCESS_ID,
    )


def _reserve(*, room: Room, reply: Message, user_id: int) -> None:
    """Reserve the reply's cost, charged to its question's asker; BudgetSpent, to the
    user who asked for it (the transaction then undoes the claim), when it does not fit."""
    question = budgets.question_of(reply=reply)
    asker_id = question.author_id if question is not None else None
    try:
        budgets.charge_reserve(room=room, reply=reply, asker_id=asker_id)
    except budgets.Spent as spent:
        raise refusals.BudgetSpent(spent, own=asker_id == user_id) from spent


def _restarted(reply: Message) -> bool:
    """Empty a finished reply to stream it again, only if it is still finished and still
    last: another tab may have regenerated or sent a message meanwhile."""
    newer = Message.objects.filter(room_id=reply.room_id, pk__gt=OuterRef("pk"))
    restarted = (
        Message.objects.filter(pk=reply.pk)
        .exclude(status=Message.Status.STREAMING)
        .filter(~Exists(newer))
        .update(
            status=Message.Status.STREAMING,
            owner=leases.PROCESS_ID,
            content="",
            error="",
            sources=[],
            model="",
            prompt_tokens=None,
            completion_tokens=None,
            length_limited=None,
            seq=F("seq") + 1,
            updated_at=timezone.now(),
        )
    )
    if restarted:
        reply.refresh_from_db()
    return bool(restarted)
