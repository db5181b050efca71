"""Fragments rendered once on the server and sent as-is to every tab."""

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import conditional_escape
from django.utils.translation import gettext_lazy

from chat.models import Message, Room
from chat.selectors import RoomChanges
from chat.usage import RoomUsage

ROOM_TEMPLATE = "chat/room_detail.html"


# The words around a message, by name: the message partial shows them with {% label %}.
MESSAGE_LABELS = {
    "replying": gettext_lazy("Replying…"),
    "sources": gettext_lazy("Sources"),
    "interrupted": gettext_lazy("Interrupted: this reply may be incomplete."),
    "stopped": gettext_lazy("Stopped."),
    "length_limited": gettext_lazy("This reply reached the length limit: Continue carries it on."),
    "stop": gettext_lazy("Stop"),
    "retry": gettext_lazy("Retry"),
    "regenerate": gettext_lazy("Regenerate"),
    "continue": gettext_lazy("Continue"),
    "usage": gettext_lazy("%(total)s tokens (%(prompt)s prompt, %(completion)s reply)"),
    "usage_unknown": gettext_lazy("Usage unknown"),
    "usage_unknown_why": gettext_lazy(
        "The model server did not report how many tokens this reply used."
    ),
    "copy": gettext_lazy("Copy"),
    "copy_message": gettext_lazy("Copy message"),
    "edit": gettext_lazy("Edit"),
    "edited_message": gettext_lazy("Edited message"),
    "save_and_resend": gettext_lazy("Save and resend"),
    # A question the AI skipped (Message.skipped_for, chat.budgets).
    "skipped_day": gettext_lazy("The AI did not answer: the asker's daily token budget ran out."),
    "skipped_month": gettext_lazy(
        "The AI did not answer: the asker's monthly token budget ran out."
    ),
    "skipped_room": gettext_lazy(
        "The AI did not answer: this room's monthly token budget ran out."
    ),
    "reacted": gettext_lazy("%(emoji)s from %(names)s"),
    "add_reaction": gettext_lazy("Add a reaction"),
    "feedback_question": gettext_lazy("Was this reply helpful?"),
    "helpful": gettext_lazy("Helpful"),
    "not_helpful": gettext_lazy("Not helpful"),
    "add_comment": gettext_lazy("Add a comment"),
    "comment": gettext_lazy("Comment (optional)"),
    "feedback_saved": gettext_lazy("Thank you: your feedback was saved."),
}
# Stand-ins no message text can contain: the nonce is this process's own. A
# label with values carries them as JSON: {% label "tokens" total=12 %}.
_NONCE = secrets.token_hex(6)
_MARKER = re.compile(f"\x1e{_NONCE}(\\w+)([^\x1f]*)\x1f")


def label_marker(name: str, values: dict[str, Any]) -> str:
    return f"\x1e{_NONCE}{name}{json.dumps(values) if values else ''}\x1f"


def label_text(name: str, values: dict[str, Any]) -> str:
    """The label in the active language, its values filled in."""
    text = str(MESSAGE_LABELS[name])
    return text % values if values else text


def messages_in_every_language(*messages: Message) -> dict[str, str]:
    """message_oob(*messages) in every language of the site, rendered once.

    A streaming reply is broadcast up to 25 times a second, and only its few
    words of chrome differ between languages: the fragment is rendered once with
    markers for them, then each language fills in its own. A saved error is
    translated by its own rules (chat_tags.reply_error), so those render per language.
    """
    if any(message.error for message in messages):
        return in_every_language(message_oob, *messages)
    with translation.override(settings.LANGUAGE_CODE):
        once = render_to_string(
            f"{ROOM_TEMPLATE}#messages_oob", {"messages": messages, "render_once": True}
        )
    fragments = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            fragments[code] = _MARKER.sub(_fill_in, once)
    return fragments


def _fill_in(found: re.Match[str]) -> str:
    values = json.loads(found[2]) if found[2] else {}
    return conditional_escape(label_text(found[1], values))


def in_every_language(render: Callable[..., str], /, *args: Any, **kwargs: Any) -> dict[str, str]:
    """`render(...)` once per language of the site, for a broadcast: each tab then
    shows it in its own language (ChatConsumer.chat_message)."""
    fragments = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            fragments[code] = render(*args, **kwargs)
    return fragments


def message_oob(*messages: Message) -> str:
    """Messages to upsert into the page's list (static/chat/chat.js keeps the newest seq)."""
    return render_to_string(f"{ROOM_TEMPLATE}#messages_oob", {"messages": messages})


def room_usage_oob(*, room: Room, room_usage: RoomUsage) -> str:
    """The room's token total, sent with a reply's final state (chat.reply_stream)."""
    return render_to_string(
        f"{ROOM_TEMPLATE}#room_usage", {"room": room, "room_usage": room_usage, "oob": True}
    )


def context_start_oob(*, context_start: int | None) -> str:
    """Where the model's memory begins (chat.limits.context_start), sent with a reply's
    final state: static/chat/room-tools.js moves the divider there."""
    return render_to_string(
        f"{ROOM_TEMPLATE}#context_start", {"context_start": context_start, "oob": True}
    )


def room_changes(*, room: Room, changes: RoomChanges) -> str:
    """A reconnecting page's catch-up (selectors.room_changes), with the room's version."""
    context = {"room": room, "changes": changes, "messages": changes.messages}
    return render_to_string(f"{ROOM_TEMPLATE}#room_changes", context)


def composer_answer(*, client_id: str = "", error: str = "") -> str:
    """The answer to one tab's frame: its send `client_id` was saved, or what was wrong.

    Only #composer-answer is replaced, never the composer, whose text the person
    may already be typing on (static/chat/composer.js).
    """
    return render_to_string(
        f"{ROOM_TEMPLATE}#composer_answer", {"client_id": client_id, "error": error, "oob": True}
    )


def room_reset(*, room: Room) -> str:
    """The room's header and an emptied message list, after its history was cleared."""
    return render_to_string(f"{ROOM_TEMPLATE}#room_reset", {"room": room})


def sync_request() -> str:
    """Tells the page to catch up (static/chat/chat.js), after broadcasts may have been lost."""
    return render_to_string(f"{ROOM_TEMPLATE}#sync_request")


def queue(*, queue: list[Message]) -> str:
    """The room's queue, to replace the page's #queue (latest wins)."""
    return render_to_string(f"{ROOM_TEMPLATE}#queue", {"queue": queue, "oob": True})


def room_title(*, room: Room) -> str:
    """The room's header after its settings changed: name, prompt, model, who the AI answers."""
    return render_to_string(f"{ROOM_TEMPLATE}#room_title", {"room": room, "oob": True})
