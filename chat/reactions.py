"""Emoji reactions on messages: the socket's "react" frame toggles one, and every tab
of the room, in every process, is sent the message's reactions after the commit.

The reactions of a message are their own element beside its article (the room
page's "reactions" partial), so a streaming reply's fragments never carry them and
stay byte-identical to a page load; which chips are the reader's own is marked by
static/chat/reactions.js, so one fragment serves every reader.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from chat import authority, ratelimit, rendering
from chat.broadcast import after_commit, room_send_sync
from chat.models import Message, Reaction
from chat.turns.refusals import RateLimited, Refused

# The reactions a message may take, in the order they are shown.
EMOJIS = ("👍", "❤️", "😂", "😮", "🙏", "👀")


class NotAllowed(Refused):
    message = _("Only these reactions can be added: %(emojis)s.")

    def __init__(self) -> None:
        super().__init__(emojis=" ".join(EMOJIS))


class NotInRoom(Refused):
    message = _("That message is not in this room.")


@dataclass
class ReactionGroup:
    """One emoji on one message, with who added it, in order."""

    emoji: str
    user_ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def names_text(self) -> str:
        return ", ".join(self.names)


def reactions_by_message(*, message_ids: Iterable[int]) -> dict[int, list[ReactionGroup]]:
    """Each message's reactions, grouped by emoji in EMOJIS' order: one query."""
    found: dict[int, dict[str, ReactionGroup]] = defaultdict(dict)
    rows = (
        Reaction.objects.filter(message_id__in=list(message_ids))
        .order_by("pk")
        .values_list("message_id", "emoji", "user_id", "user__username")
    )
    for message_id, emoji, user_id, username in rows:
        group = found[message_id].setdefault(emoji, ReactionGroup(emoji=emoji))
        group.user_ids.append(user_id)
        group.names.append(username)
    return {
        message_id: [groups[emoji] for emoji in EMOJIS if emoji in groups]
        for message_id, groups in found.items()
    }


async def reaction_toggle(
    *, room_id: int, user: AbstractBaseUser, message_id: int | None, emoji: object
) -> None:
    """Add this user's `emoji` to the message, or take it back if it is there. Refused,
    with nothing saved, for an emoji outside EMOJIS, a message of another room, and
    past the user's rate limit (reactions count with their messages)."""
    if not isinstance(emoji, str) or emoji not in EMOJIS:
        raise NotAllowed
    if message_id is None:
        raise NotInRoom
    if retry_after := await ratelimit.message_rate_hit(user_id=user.pk):
        raise RateLimited(retry_after)
    await database_sync_to_async(_toggle)(
        room_id=room_id, user_id=user.pk, message_id=message_id, emoji=emoji
    )


def _toggle(*, room_id: int, user_id: int, message_id: int, emoji: str) -> None:
    with transaction.atomic():
        authority.room_for_action(room_id=room_id, user_id=user_id)
        shown = Message.objects.filter(pk=message_id, room_id=room_id).exclude(
            status=Message.Status.QUEUED
        )
        if not shown.exists():
            raise NotInRoom
        mine = Reaction.objects.filter(message_id=message_id, user_id=user_id, emoji=emoji)
        if not mine.delete()[0]:
            Reaction.objects.get_or_create(message_id=message_id, user_id=user_id, emoji=emoji)
        after_commit(_reactions_send, room_id=room_id, message_id=message_id)


def reactions_html(*, message: Message, groups: list[ReactionGroup], oob: bool = False) -> str:
    context = {"message": message, "groups": groups, "oob": oob}
    return render_to_string(f"{rendering.ROOM_TEMPLATE}#reactions", context)


def _reactions_send(*, room_id: int, message_id: int) -> None:
    """The message's reactions as stored now, to every tab of the room; a slow tab
    gets only the newest (the key)."""
    groups = reactions_by_message(message_ids=[message_id]).get(message_id, [])
    message = Message(pk=message_id, room_id=room_id)
    html = rendering.in_every_language(reactions_html, message=message, groups=groups, oob=True)
    room_send_sync(room_id=room_id, html=html, key=f"reactions-{message_id}")
