"""The room's websocket: validates frames, hands them to services, forwards broadcasts.

Frames come from htmx's ws extension as JSON: {"content": ..., "HEADERS": {...}}.
A frame with an "action" is a control frame:
- "sync" (with "after", a message id) asks for what the page has not seen;
  static/chat/chat.js sends it whenever the socket opens;
- "stop" (with "message", a reply's id) ends a streaming reply for everyone;
- "regenerate" answers the last message again (also the retry after an error);
- "cancel" (with "message", a queued question's id) takes it out of the AI's queue;
- "join" makes the socket count as present (static/chat/presence.js sends it
  whenever the socket opens); the answer is the room's queue;
- "typing" tells the room's other people this user is typing (throttled).
"""

import json
import logging
import math
from collections import Counter
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat import presence, queue, rendering, replies, selectors, services
from chat.broadcast import room_group
from chat.forms import MessageForm
from chat.models import Room

logger = logging.getLogger(__name__)

# Close codes in the 4000-4999 range the protocol leaves to applications.
# Refusals happen before accept, so nothing of the room is ever sent.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_REMOVED = 4403
# An unknown room and someone else's room look the same.
CLOSE_ROOM_NOT_FOUND = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429

# Room events whose fragment every tab gets as-is (chat_message).
FORWARDED_EVENTS = {"chat.message", "chat.presence", "chat.queue"}

# Open sockets per user in this process.
_connections: Counter[int] = Counter()


class ChatConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    # The page announced itself ("join"): it counts as someone here.
    present: bool = False
    # The page's language, as LocaleMiddleware picked it for the page.
    language: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        room = await selectors.room_aget(pk=self.scope["url_route"]["kwargs"]["pk"], user=user)
        if room is None:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
            return
        if _connections[user.pk] >= settings.CHAT_MAX_CONNECTIONS_PER_USER:
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.room = room
        self.language = _language(self.scope)
        _connections[user.pk] += 1
        await self.channel_layer.group_add(room_group(room.pk), self.channel_name)
        await self.accept()
        replies.reply_watchdog_start()

    async def disconnect(self, code: int) -> None:
        if self.room is None:
            return
        user_id = self.scope["user"].pk
        _connections[user_id] -= 1
        if _connections[user_id] <= 0:
            del _connections[user_id]
        await self.channel_layer.group_discard(room_group(self.room.pk), self.channel_name)
        if self.present:
            await self._presence_leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return
        # What this socket alone is sent (composer, notices, catch-up) is in its language.
        with translation.override(self.language):
            await self._handle(text_data)

    async def _handle(self, text_data: str | None) -> None:
        if text_data is not None and len(text_data) > settings.CHAT_FRAME_MAX_LENGTH:
            await self._refuse(_("That frame was too large, so nothing was sent."))
            return
        frame = _parse_frame(text_data)
        if frame is None:
            await self._refuse(_("That frame was not a JSON object, so it was ignored."))
        elif frame.get("action") == "sync":
            await self._catch_up(frame.get("after"))
        elif frame.get("action") == "stop":
            await self._stop(frame.get("message"))
        elif frame.get("action") == "regenerate":
            await self._regenerate()
        elif frame.get("action") == "join":
            await self._presence_join()
        elif frame.get("action") == "cancel":
            await self._cancel(frame.get("message"))
        elif frame.get("action") == "typing":
            await presence.typing_send(room_id=self.room.pk, user=self.scope["user"])
        elif "action" in frame:
            await self._refuse(_("Unknown action."))
        elif "content" not in frame:
            await self._refuse(_("That frame had no message content, so nothing was sent."))
        else:
            await self._send_message(frame)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # A room broadcast never touches the database, so it skips the
        # close_old_connections() Channels runs before every handler in the
        # database thread: that hop, per frame per tab, was the largest cost of
        # fanning a reply out (docs/benchmark.md).
        if message["type"] in FORWARDED_EVENTS:
            await self.chat_message(message)
        else:
            await super().dispatch(message)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A fragment broadcast to the room: forward it unchanged, in this tab's language."""
        await self.send(text_data=event.get("translations", {}).get(self.language, event["html"]))

    async def chat_member_removed(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.scope["user"].pk:
            await self.close(code=CLOSE_REMOVED)

    async def _send_message(self, frame: dict[str, Any]) -> None:
        form = MessageForm(data={"content": frame["content"]})
        if not form.is_valid():
            await self.send(text_data=rendering.composer(room=self.room, form=form))
            return
        try:
            await services.message_send(
                room=self.room, author=self.scope["user"], content=form.cleaned_data["content"]
            )
        except services.RateLimited as limited:
            error = _("You are sending messages too fast. Try again in %(seconds)d seconds.") % {
                "seconds": math.ceil(limited.retry_after)
            }
            await self.send(text_data=rendering.composer(room=self.room, form=form, error=error))
            return
        except services.QueueFull:
            limit = settings.CHAT_QUEUE_LIMIT
            error = ngettext(
                "%(count)d question is already waiting for the AI. Send yours once it is answered.",
                "%(count)d questions are already waiting for the AI. "
                "Send yours when one is answered.",
                limit,
            ) % {"count": limit}
            await self.send(text_data=rendering.composer(room=self.room, form=form, error=error))
            return
        except services.RoomGone:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
            return
        await self.send(text_data=rendering.composer(room=self.room))

    async def _stop(self, message_id: object) -> None:
        message_id = _as_id(message_id)
        if message_id is None or not await services.reply_stop(
            room=self.room, message_id=message_id
        ):
            await self._refuse(_("That reply is not being written any more."))

    async def _regenerate(self) -> None:
        try:
            await services.reply_regenerate(room=self.room)
        except services.RoomBusy:
            await self._refuse(_("Wait for the current reply to finish, then try again."))
        except services.NothingToRegenerate:
            await self._refuse(_("There is no reply to regenerate."))

    # Shared rooms: presence, typing and the AI's queue.

    async def _presence_join(self) -> None:
        user_id = self.scope["user"].pk
        # Once per socket: a repeated "join" tells the room nothing new.
        if not self.present:
            self.present = True
            await presence.presence_join(
                room_id=self.room.pk, user_id=user_id, channel=self.channel_name
            )
        await database_sync_to_async(services.room_read_mark)(room_id=self.room.pk, user_id=user_id)
        # A reconnecting page may have missed changes to the queue.
        await self.send(
            text_data=await database_sync_to_async(queue.queue_html)(room_id=self.room.pk)
        )

    async def _presence_leave(self) -> None:
        user_id = self.scope["user"].pk
        await presence.presence_leave(
            room_id=self.room.pk, user_id=user_id, channel=self.channel_name
        )
        await database_sync_to_async(services.room_read_mark)(room_id=self.room.pk, user_id=user_id)

    async def chat_typing(self, event: dict[str, Any]) -> None:
        # Nobody needs to see themselves typing.
        if event["user_id"] != self.scope["user"].pk:
            await self.chat_message(event)

    async def chat_room_gone(self, event: dict[str, Any]) -> None:
        """The room was deleted, or this user left it."""
        if event["user_id"] in (None, self.scope["user"].pk):
            await self.close(code=CLOSE_ROOM_NOT_FOUND)

    async def _cancel(self, message_id: object) -> None:
        message_id = _as_id(message_id)
        if message_id is None or not await database_sync_to_async(services.queue_cancel)(
            room=self.room, user=self.scope["user"], message_id=message_id
        ):
            await self._refuse(_("That question is not waiting any more."))

    async def _catch_up(self, after: object) -> None:
        after = _as_id(after, allow_zero=True)
        if after is None:
            await self._refuse(_("Could not catch up: the sync frame was malformed."))
            return
        messages = await database_sync_to_async(selectors.room_messages_after)(
            room=self.room, after=after
        )
        if messages:
            await self.send(text_data=rendering.message_oob(*messages))

    async def _refuse(self, reason: str) -> None:
        await self.send(text_data=rendering.composer(room=self.room, error=reason))


def _language(scope: dict[str, Any]) -> str:
    """The language LocaleMiddleware would pick for this handshake: the language
    cookie, else the browser's Accept-Language, else the default."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


def _as_id(value: object, *, allow_zero: bool = False) -> int | None:
    """A message id from a frame: htmx sends form values as strings, scripts as numbers."""
    if isinstance(value, str) and value.isdecimal():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= (0 if allow_zero else 1):
        return value
    return None


def _parse_frame(text_data: str | None) -> dict[str, Any] | None:
    if text_data is None:
        return None
    try:
        frame = json.loads(text_data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None
