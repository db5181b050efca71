"""The room's websocket: validates frames, hands them to services, forwards broadcasts.

Frames come from htmx's ws extension as JSON: {"content": ..., "HEADERS": {...}}.
A frame with an "action" is a control frame:
- "sync" (with "after", a message id) asks for what the page has not seen;
  static/chat/chat.js sends it whenever the socket opens;
- "stop" (with "message", a reply's id) ends a streaming reply for everyone;
- "regenerate" answers the last message again (also the retry after an error);
- "continue" (with "message", a reply's id) carries an interrupted or stopped
  reply on from where it ended.
"""

import json
import logging
import math
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from chat import connections, lifecycle, rendering, selectors, services, shutdown
from chat.broadcast import room_group
from chat.forms import MessageForm
from chat.models import Room

logger = logging.getLogger(__name__)

# Close codes in the 4000-4999 range the protocol leaves to applications.
# Refusals happen before accept, so nothing of the room is ever sent; but one
# the page must tell apart (signed out) is accepted first, or the browser sees
# only a bare 1006.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_REMOVED = 4403
# An unknown room and someone else's room look the same.
CLOSE_ROOM_NOT_FOUND = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429


class ChatConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    counted = False
    # The page's language, as LocaleMiddleware picked it for the page.
    language: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            # The session expired or its user logged out: the page says so.
            await self.accept()
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        room = await selectors.room_aget(pk=self.scope["url_route"]["kwargs"]["pk"], user=user)
        if room is None:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
            return
        if shutdown.draining():
            await self.accept()
            await self.close(code=shutdown.CLOSE_RESTARTING)
            return
        await lifecycle.process_start()
        if not await connections.connection_open(user_id=user.pk):
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.counted = True
        self.room = room
        self.language = _language(self.scope)
        await self.channel_layer.group_add(room_group(room.pk), self.channel_name)
        await self.accept()
        shutdown.socket_opened(self)
        if shutdown.draining():
            # The drain began while this socket was opening, after it closed the others.
            await self.close(code=shutdown.CLOSE_RESTARTING)

    async def disconnect(self, code: int) -> None:
        shutdown.socket_closed(self)
        if self.counted:
            self.counted = False
            await connections.connection_close(user_id=self.scope["user"].pk)
        if self.room is not None:
            await self.channel_layer.group_discard(room_group(self.room.pk), self.channel_name)

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
        elif frame.get("action") == "continue":
            await self._continue(frame.get("message"))
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
        if message["type"] == "chat.message":
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
        except services.RoomBusy:
            error = _("Wait for the current reply to finish, then send again.")
            await self.send(text_data=rendering.composer(room=self.room, form=form, error=error))
            return
        except services.ServerRestarting:
            error = _("The server is restarting; send again in a moment.")
            await self.send(text_data=rendering.composer(room=self.room, form=form, error=error))
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
        except services.ServerRestarting:
            await self._refuse(_("The server is restarting; try again in a moment."))

    async def _continue(self, message_id: object) -> None:
        message_id = _as_id(message_id)
        try:
            if message_id is None:
                raise services.NothingToContinue
            await services.reply_continue(room=self.room, message_id=message_id)
        except services.NothingToContinue:
            await self._refuse(
                _("Only the room's last reply can be continued, once interrupted or stopped.")
            )
        except services.RoomBusy:
            await self._refuse(_("Wait for the current reply to finish, then try again."))
        except services.ServerRestarting:
            await self._refuse(_("The server is restarting; try again in a moment."))

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
