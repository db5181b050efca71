"""Fragments rendered once on the server and sent as-is to every tab."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from chat.forms import MessageForm
from chat.models import Message, Room

ROOM_TEMPLATE = "chat/room_detail.html"


def in_every_language(render: Callable[..., str], /, *args: Any, **kwargs: Any) -> dict[str, str]:
    """`render(...)` once per language of the site, for a broadcast: each tab then
    shows it in its own language (ChatConsumer.chat_message). Message bodies are
    rendered once (chat.markdown caches), so a second language costs the template only."""
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
