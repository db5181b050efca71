"""Fragments rendered once on the server and sent as-is to every tab."""

import re
import secrets
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import conditional_escape
from django.utils.translation import gettext_lazy

from chat.forms import MessageForm
from chat.models import Message, Room

ROOM_TEMPLATE = "chat/room_detail.html"


# The words around a message, by name: the message partial shows them with {% label %}.
MESSAGE_LABELS = {
    "replying": gettext_lazy("Replying…"),
    "sources": gettext_lazy("Sources"),
    "interrupted": gettext_lazy("Interrupted: this reply may be incomplete."),
    "stopped": gettext_lazy("Stopped."),
    "stop": gettext_lazy("Stop"),
    "retry": gettext_lazy("Retry"),
    "regenerate": gettext_lazy("Regenerate"),
}
# Stand-ins no message text can contain: the nonce is this process's own.
_NONCE = secrets.token_hex(6)
_MARKERS = {name: f"\x1e{_NONCE}{name}\x1f" for name in MESSAGE_LABELS}
_MARKER = re.compile(f"\x1e{_NONCE}(\\w+)\x1f")


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
            f"{ROOM_TEMPLATE}#messages_oob", {"messages": messages, "label_markers": _MARKERS}
        )
    return {code: _fill_in(once, _labels(code)) for code, _name in settings.LANGUAGES}


def _fill_in(fragment: str, labels: dict[str, str]) -> str:
    return _MARKER.sub(lambda found: labels[found[1]], fragment)


@cache
def _labels(language: str) -> dict[str, str]:
    with translation.override(language):
        return {name: conditional_escape(str(text)) for name, text in MESSAGE_LABELS.items()}


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


def composer(*, room: Room, form: MessageForm | None = None, error: str = "") -> str:
    """The composer for one tab: fresh after a send, or with the text and what was wrong."""
    return render_to_string(
        f"{ROOM_TEMPLATE}#composer",
        {"room": room, "form": form or MessageForm(), "error": error, "oob": True},
    )


def room_reset(*, room: Room) -> str:
    """The room's header and an emptied message list, after its history was cleared."""
    return render_to_string(f"{ROOM_TEMPLATE}#room_reset", {"room": room})


def sync_request() -> str:
    """Tells the page to catch up (static/chat/chat.js), after broadcasts may have been lost."""
    return render_to_string(f"{ROOM_TEMPLATE}#sync_request")
