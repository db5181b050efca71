"""Fragments rendered once on the server and sent as-is to every tab."""

from django.template.loader import render_to_string

from chat.forms import MessageForm
from chat.models import Message, Room

ROOM_TEMPLATE = "chat/room_detail.html"


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
