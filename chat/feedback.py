"""Feedback on the AI's replies: 👍 or 👎 and an optional comment, one per reply per
reader, changed by giving it again. Kept for the room's export and the admin."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chat import authority
from chat.models import Feedback, Message
from chat.turns.refusals import Refused


class NotAReply(Refused):
    message = _("Only the AI's finished replies take feedback.")


def feedback_give(
    *, user: AbstractBaseUser, room_id: int, message_id: int, rating: str, comment: str
) -> Feedback:
    """Save this reader's feedback on a finished reply of a room they are in."""
    with transaction.atomic():
        authority.room_for_action(room_id=room_id, user_id=user.pk)
        reply = (
            Message.objects.filter(pk=message_id, room_id=room_id, role=Message.Role.ASSISTANT)
            .exclude(status=Message.Status.STREAMING)
            .first()
        )
        if reply is None:
            raise NotAReply
        feedback, _created = Feedback.objects.update_or_create(
            message=reply, user_id=user.pk, defaults={"rating": rating, "comment": comment.strip()}
        )
    return feedback


def feedback_by_reader(
    *, user: AbstractBaseUser, message_ids: Iterable[int]
) -> dict[int, Feedback]:
    """What this reader said of each of these replies."""
    found = Feedback.objects.filter(user_id=user.pk, message_id__in=list(message_ids))
    return {feedback.message_id: feedback for feedback in found}


def feedback_by_message(*, message_ids: Iterable[int]) -> dict[int, list[dict[str, str]]]:
    """Everyone's feedback on each of these replies, oldest first, for the export."""
    found: dict[int, list[dict[str, str]]] = {}
    rows = (
        Feedback.objects.filter(message_id__in=list(message_ids))
        .order_by("pk")
        .values_list("message_id", "user__username", "rating", "comment")
    )
    for message_id, username, rating, comment in rows:
        found.setdefault(message_id, []).append(
            {"user": username, "rating": rating, "comment": comment}
        )
    return found
