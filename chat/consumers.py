"""The room's websocket: validates frames, hands them to services, forwards broadcasts.

Frames come from htmx's ws extension as JSON: {"content": ..., "HEADERS": {...}}.
A frame with an "action" is a control frame:
- "sync" (with "after", a message id) asks for what the page has not seen;
  static/chat/chat.js sends it whenever the socket opens, and when told the
  server's Redis feed was restored. With "message" and "seq" instead, it asks
  for one message, sent only if the server has a newer version: the page sends
  it when it sees a gap in a message's seq, or a streaming message fall silent;
- "stop" (with "message", a reply's id) ends a streaming reply for everyone;
- "regenerate" answers the last message again (also the retry after an error);
- "edit" (with "message", the room's last user message, and "content") changes
  that message and answers it again.
- "cancel" (with "message", a queued question's id) takes it out of the AI's queue;
- "join" makes the socket count as present (static/chat/presence.js sends it
  whenever the socket opens); the answer is the room's queue;
- "typing" tells the room's other people this user is typing (throttled);
- "continue" (with "message", a reply's id) carries an interrupted or stopped
  reply on from where it ended.
"""

import json
import logging
import math
import uuid
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat import (
    connections,
    lifecycle,
    metrics,
    presence,
    queue,
    rendering,
    selectors,
    services,
    shutdown,
)
from chat.broadcast import room_group
from chat.forms import MessageForm
from chat.models import Room
from chat.outbox import Outbox
from chat.throttle import TokenBucket

logger = logging.getLogger(__name__)

# The Redis feed was lost: "service restart", which the page retries.
CLOSE_FEED_LOST = 1012
# Close codes in the 4000-4999 range the protocol leaves to applications.
# A refused socket is accepted, then closed at once with its code (nothing of
# the room is sent): a close before accept reaches the browser as a bare 1006,
# which the page cannot explain and htmx retries forever.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_REMOVED = 4403
# An unknown room and someone else's room look the same.
CLOSE_ROOM_NOT_FOUND = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429

# Room events whose fragment every tab gets as-is (chat_message).
FORWARDED_EVENTS = {"chat.message", "chat.presence", "chat.queue"}


class ChatConsumer(AsyncWebsocketConsumer):
    # None on a refused socket, which reads no frames; connect() sets both before any frame.
    room: Room = None  # type: ignore[assignment]
    outbox: Outbox = None  # type: ignore[assignment]
    # The page announced itself ("join"): it counts as someone here.
    present: bool = False
    # Counted against CHAT_MAX_CONNECTIONS_PER_USER, across processes (chat.connections).
    counted = False
    # The page's language, as LocaleMiddleware picked it for the page.
    language: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            # The session expired or its user logged out: the page says so.
            await self._refuse_socket(CLOSE_NOT_LOGGED_IN)
            return
        room = await selectors.room_aget(pk=self.scope["url_route"]["kwargs"]["pk"], user=user)
        if room is None:
            await self._refuse_socket(CLOSE_ROOM_NOT_FOUND)
            return
        if shutdown.draining():
            await self._refuse_socket(shutdown.CLOSE_RESTARTING)
            return
        await lifecycle.process_start()
        if not await connections.connection_open(user_id=user.pk):
            await self._refuse_socket(CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.counted = True
        self.room = room
        self.language = _language(self.scope)
        metrics.OPEN_WEBSOCKETS.inc()
        # Catch-up reads cost the database thread every tab shares: a few at
        # once, then one a second (CHAT_SYNC_RATE).
        self.syncs = TokenBucket(rate=settings.CHAT_SYNC_RATE, burst=settings.CHAT_SYNC_BURST)
        # Made before joining the group, whose broadcasts it carries; it can
        # watch the connection's buffer only once the handshake is done.
        outbox = Outbox(
            self._write,
            self._close_with,
            limit=settings.CHAT_OUTBOX_LIMIT,
            send_buffer=settings.CHAT_SOCKET_SEND_BUFFER,
        )
        self.outbox = outbox
        await self.channel_layer.group_add(room_group(room.pk), self.channel_name)
        await self.accept()
        outbox.attach(self.base_send)
        shutdown.socket_opened(self)
        if shutdown.draining():
            # The drain began while this socket was opening, after it closed the others.
            await self.close(code=shutdown.CLOSE_RESTARTING)

    async def _refuse_socket(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        shutdown.socket_closed(self)
        if self.counted:
            self.counted = False
            await connections.connection_close(user_id=self.scope["user"].pk)
        if self.room is None:
            return
        metrics.OPEN_WEBSOCKETS.dec()
        try:
            await self.channel_layer.group_discard(room_group(self.room.pk), self.channel_name)
        except Exception:
            # Redis is gone; its subscription went with it.
            logger.info("could not leave room %s's group", self.room.pk, exc_info=True)
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
            await self._catch_up(frame)
        elif frame.get("action") == "stop":
            await self._stop(frame.get("message"))
        elif frame.get("action") == "regenerate":
            await self._regenerate()
        elif frame.get("action") == "continue":
            await self._continue(frame.get("message"))
        elif frame.get("action") == "edit":
            await self._edit(frame)
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
        """A fragment broadcast to the room: forward it unchanged, in this tab's language.

        The event's "key" names the message it carries, so a tab that reads
        slowly gets only that message's newest version (chat.outbox).
        """
        html = event.get("translations", {}).get(self.language, event["html"])
        await self.outbox.put(html, key=event.get("key"))

    async def layer_down(self, event: dict[str, Any]) -> None:
        """This process lost Redis (chat.layers): the page shows it is offline and retries."""
        await self.close(code=CLOSE_FEED_LOST)

    async def layer_reconnected(self, event: dict[str, Any]) -> None:
        """The feed came back after a drop: broadcasts in between are lost, so the page re-syncs."""
        with translation.override(self.language):
            await self.send(text_data=rendering.sync_request())

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        # Every text frame goes through the outbox, so nothing overtakes what waits there.
        if text_data is not None and not close and self.outbox is not None:
            await self.outbox.put(text_data)
        else:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def _write(self, text: str) -> None:
        metrics.FRAMES_SENT.inc()
        await super().send(text_data=text)

    async def _close_with(self, code: int) -> None:
        await self.close(code=code)

    async def chat_member_removed(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.scope["user"].pk:
            await self.close(code=CLOSE_REMOVED)

    async def _send_message(self, frame: dict[str, Any]) -> None:
        # The page's id for this send: a repeat of it is answered, not saved again.
        client_id = _as_uuid(frame.get("client_id"))
        answer = partial(rendering.composer_answer, client_id=str(client_id or ""))
        if client_id is None and frame.get("client_id") is not None:
            await self.send(text_data=answer(error=_("That message had a malformed id.")))
            return
        form = MessageForm(data={"content": frame["content"]})
        if not form.is_valid():
            await self.send(text_data=answer(error=" ".join(map(str, form.errors["content"]))))
            return
        try:
            await services.message_send(
                room=self.room,
                author=self.scope["user"],
                content=form.cleaned_data["content"],
                client_id=client_id,
            )
        except services.RateLimited as limited:
            error = _("You are sending messages too fast. Try again in %(seconds)d seconds.") % {
                "seconds": math.ceil(limited.retry_after)
            }
            await self.send(text_data=answer(error=error))
            return
        except services.QueueFull:
            limit = settings.CHAT_QUEUE_LIMIT
            error = ngettext(
                "%(count)d question is already waiting for the AI. Send yours once it is answered.",
                "%(count)d questions are already waiting for the AI. "
                "Send yours when one is answered.",
                limit,
            ) % {"count": limit}
            await self.send(text_data=answer(error=error))
            return
        except services.RoomGone:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
            return
        await self.send(text_data=answer())

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

    async def _edit(self, frame: dict[str, Any]) -> None:
        message_id = _as_id(frame.get("message"))
        form = MessageForm(data={"content": frame.get("content")})
        if message_id is None:
            await self._refuse(_("Only the room's last message can be edited."))
            return
        if not form.is_valid():
            await self._refuse(" ".join(str(error) for error in form.errors["content"]))
            return
        try:
            await services.message_edit(
                room=self.room,
                author=self.scope["user"],
                message_id=message_id,
                content=form.cleaned_data["content"],
            )
        except services.EditRefused as refused:
            await self._refuse(_(str(refused)))
        except services.RoomBusy:
            await self._refuse(_("Wait for the current reply to finish, then edit."))
        except services.ServerRestarting:
            await self._refuse(_("The server is restarting; try again in a moment."))
        except services.RateLimited as limited:
            await self._refuse(
                _("You are sending messages too fast. Try again in %(seconds)d seconds.")
                % {"seconds": math.ceil(limited.retry_after)}
            )

    async def _catch_up(self, frame: dict[str, Any]) -> None:
        if "message" in frame:
            message_id, seq = _as_id(frame["message"]), _as_id(frame.get("seq"), allow_zero=True)
            after = None
        else:
            message_id, seq = None, None
            after = _as_id(frame.get("after"), allow_zero=True)
        if after is None and (message_id is None or seq is None):
            await self._refuse(_("Could not catch up: the sync frame was malformed."))
            return
        # Past the throttle, a sync is dropped: the page asks again while it still lacks something.
        if not self.syncs.take():
            metrics.SYNCS_DROPPED.inc()
            return
        if after is not None:
            messages = await database_sync_to_async(selectors.room_messages_after)(
                room=self.room, after=after
            )
        else:
            messages = await database_sync_to_async(selectors.room_message_newer)(
                room=self.room, pk=message_id, seq=seq
            )
        if messages:
            await self.send(text_data=rendering.message_oob(*messages))

    async def _refuse(self, reason: str) -> None:
        await self.send(text_data=rendering.composer_answer(error=reason))


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


def _as_uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _parse_frame(text_data: str | None) -> dict[str, Any] | None:
    if text_data is None:
        return None
    try:
        frame = json.loads(text_data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None
