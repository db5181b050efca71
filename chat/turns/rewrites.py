"""A reply written again, in the database, one transaction each, as chat.turns.claims:

- restart: the room's last reply, emptied to be written again (Regenerate, Retry);
- edit: the room's last question takes new text, and its reply is written again;
- resume: an interrupted or stopped last reply, or one cut at the reply ceiling,
  streaming again (Continue).

Each reserves the reply's cost in the budgets (chat.budgets), charged to the
question's asker, in the same transaction.
"""

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from chat import budgets, leases, mentions, selectors
from chat.authority import room_for_action
from chat.broadcast import message_broadcast_on_commit
from chat.models import Message, Room
from chat.turns import claims, refusals


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
                reply = claims.placeholder_create(room=room)
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
