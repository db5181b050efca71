"""Mentions of people: a message that names a member of its room as @username.

The names are found when the message is saved (or edited), in the same
transaction, and kept as Mention rows. A name that is not a member, the
author's own, and @ai (which calls the AI in) mention nobody. The message then
shows each mention as <span class="mention" data-mention="name"> for every
reader alike: the page highlights its reader's own (static/chat/mentions.js).
"""

import re

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import normalize_newlines

from chat.models import Mention, Message, Room

# "@" then a username (letters, digits and . + - _), not inside an e-mail address;
# it ends on a letter or digit, so "@minji." and "@minji," name minji.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]*\w)")
# Calls the AI in (selectors.message_addressed); never a person.
AI_NAME = "ai"


def mention_candidates(*, content: str) -> set[str]:
    """Every name written as @name, whether or not anyone has it."""
    return {name for name in MENTION.findall(content) if name.lower() != AI_NAME}


def room_people(*, room: Room) -> list[str]:
    """The usernames of the room's people (its owner and members), sorted. More than
    one means the room is shared (the owner is never a member)."""
    people = get_user_model().objects.filter(Q(pk=room.owner_id) | Q(shared_rooms=room))
    return sorted(set(people.values_list("username", flat=True)))


def mentions_save(*, message: Message, edited: bool = False) -> list[int]:
    """Record whom the message mentions (after an edit, instead of whom it did);
    returns their ids. Call it in the transaction that saves the message. A message
    with no @name costs no query."""
    if edited:
        Mention.objects.filter(message=message).delete()
    names = mention_candidates(content=message.content)
    if not names or message.author_id is None:
        return []
    people = (
        get_user_model()
        .objects.filter(Q(pk=message.room.owner_id) | Q(shared_rooms=message.room_id))
        .filter(username__in=names)
        .exclude(pk=message.author_id)
        .values_list("pk", flat=True)
        .distinct()
    )
    user_ids = sorted(people)
    Mention.objects.bulk_create(
        [Mention(message=message, user_id=pk, room_id=message.room_id) for pk in user_ids]
    )
    return user_ids


def message_mentioned(*, message: Message) -> set[str]:
    """The usernames the message mentions. No query for a message without an @name."""
    if message.role != Message.Role.USER or not mention_candidates(content=message.content):
        return set()
    return set(
        Mention.objects.filter(message_id=message.pk).values_list("user__username", flat=True)
    )


def mention_html(*, message: Message) -> SafeString:
    """A person's message as HTML: its text escaped, line breaks kept (as Django's
    linebreaksbr), and each mention of a member marked up."""
    text = normalize_newlines(message.content)
    mentioned = message_mentioned(message=message)
    parts: list[str] = []
    last = 0
    for match in MENTION.finditer(text):
        if match[1] not in mentioned:
            continue
        parts.append(escape(text[last : match.start()]))
        name = escape(match[1])
        parts.append(f'<span class="mention" data-mention="{name}">@{name}</span>')
        last = match.end()
    parts.append(escape(text[last:]))
    return mark_safe("".join(parts).replace("\n", "<br>"))
