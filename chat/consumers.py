"""The room's websocket: checks each frame's authority, hands it on, forwards broadcasts.

Frames come from htmx's ws extension as JSON: {"content": ..., "HEADERS": {...}}
sends a message; a frame with an "action" is a control frame (the README's
protocol table lists them). Before any frame is handled, chat.authority checks
that the socket's session still vouches for its user and that the user still
has the room: otherwise the socket is closed (4401, 4403, 4404) and nothing it
sent is saved. The actions themselves are chat.turns.actions'. A streaming
reply reaches the page as deltas (chat.deltas); "sync", with "since" (a room
version) or with "message" and "seq", is how a page catches up or repairs.
"""

import logging
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from chat import (
    authority,
    connections,
    deltas,
    lifecycle,
    metrics,
    presence,
    reactions,
    recaps,
    rendering,
    selectors,
    shutdown,
)
from chat.broadcast import room_group
from chat.budget_socket import BudgetNotices
from chat.forms import MessageForm
from chat.frames import as_id, as_uuid, key_pk, language, parse
from chat.models import Room
from chat.outbox import Outbox
from chat.room_presence import RoomPresence
from chat.room_sync import RoomSync
from chat.throttle import TokenBucket
from chat.turns import actions
from chat.turns.refusals import Refused

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


class ChatConsumer(RoomPresence, RoomSync, BudgetNotices, AsyncWebsocketConsumer):
    # None on a refused socket, which reads no frames; connect() sets both before any frame.
    room: Room = None  # type: ignore[assignment]
    outbox: Outbox = None  # type: ignore[assignment]
    # Counted against CHAT_MAX_CONNECTIONS_PER_USER, across processes (chat.connections).
    counted = False
    # The page's language, as LocaleMiddleware picked it for the page.
    language: str = settings.LANGUAGE_CODE
    # The newest message a reset of the room deleted: later updates of it are ghosts.
    cleared_through = 0

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
        self.language = language(self.scope)
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
        frame = parse(text_data)
        # Past the throttle, a sync is dropped before it costs the database thread
        # anything: the page asks again while it still lacks something.
        if frame is not None and frame.get("action") == "sync" and not self.syncs.take():
            metrics.SYNCS_DROPPED.inc()
            return
        user = self.scope["user"]
        try:
            # Who may act is asked now, not as it was when the socket opened.
            self.room = await database_sync_to_async(authority.socket_check)(
                session_key=self.scope["session"].session_key, user_id=user.pk, room_id=self.room.pk
            )
            await self._act(frame)
        except Refused as refused:
            await self._refuse(refused.text())
        except authority.SignedOut:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
        except authority.NotMember:
            await self.close(code=CLOSE_REMOVED)
        except authority.RoomGone:
            await self.close(code=CLOSE_ROOM_NOT_FOUND)
        except Exception:
            logger.exception("a frame in room %s failed", self.room.pk)
            await self._refuse(_("Something went wrong on the server, so nothing was saved."))

    async def _act(self, frame: dict[str, Any] | None) -> None:
        user, room_id = self.scope["user"], self.room.pk
        action = frame.get("action") if frame is not None else None
        message_id = as_id(frame.get("message")) if frame is not None else None
        if frame is None:
            await self._refuse(_("That frame was not a JSON object, so it was ignored."))
        elif action == "sync":
            await self._catch_up(frame)
        elif action == "stop":
            await actions.reply_stop_ask(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "regenerate":
            await actions.reply_regenerate(room_id=room_id, user=user)
        elif action == "continue":
            await actions.reply_continue(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "edit":
            await self._edit(frame, message_id)
        elif action == "join":
            await self._presence_join()
        elif action == "cancel":
            await actions.queue_cancel(room_id=room_id, user=user, message_id=message_id or 0)
        elif action == "react":
            await reactions.reaction_toggle(
                room_id=room_id, user=user, message_id=message_id, emoji=frame.get("emoji")
            )
        elif action == "typing":
            await presence.typing_send(room_id=room_id, user=user)
        elif action == "catch_up":
            await recaps.recap_ask(room=self.room, user=user, tab=self)
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
        elif message["type"] == "chat.delta":
            await self.chat_delta(message)
        else:
            await super().dispatch(message)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A fragment broadcast to the room: forward it unchanged, in this tab's language.

        The event's "key" names the message it carries, so a tab that reads
        slowly gets only that message's newest version (chat.outbox).
        """
        if 0 < key_pk(event.get("key")) <= self.cleared_through:
            return  # a reply that was streaming when the room was reset
        html = event.get("translations", {}).get(self.language, event["html"])
        await self.outbox.put(html, key=event.get("key"))

    async def chat_delta(self, event: dict[str, Any]) -> None:
        """A streaming reply's delta: the same frame for every language (chat.deltas)."""
        if 0 < key_pk(event["key"]) <= self.cleared_through:
            return  # a reply that was streaming when the room was reset
        await self.outbox.put(event["frame"], key=("delta", event["key"]), merge=deltas.merge)

    async def chat_room_reset(self, event: dict[str, Any]) -> None:
        """The room's conversation was cleared (its system prompt changed)."""
        self.cleared_through = max(self.cleared_through, event["cleared_through"])
        await self.chat_message({**event, "key": None})

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
        client_id = as_uuid(frame.get("client_id"))
        answer = partial(rendering.composer_answer, client_id=str(client_id or ""))
        if client_id is None and frame.get("client_id") is not None:
            await self.send(text_data=answer(error=_("That message had a malformed id.")))
            return
        form = MessageForm(data={"content": frame["content"]})
        if not form.is_valid():
            await self.send(text_data=answer(error=" ".join(map(str, form.errors["content"]))))
            return
        try:
            await actions.message_send(
                room_id=self.room.pk,
                author=self.scope["user"],
                content=form.cleaned_data["content"],
                client_id=client_id,
            )
        except Refused as refused:
            # The page gives the sender the text back, and shows why.
            await self.send(text_data=answer(error=refused.text()))
            return
        await self.send(text_data=answer())
        await presence.typing_reset(room_id=self.room.pk, user_id=self.scope["user"].pk)

    async def chat_room_gone(self, event: dict[str, Any]) -> None:
        """The room was deleted, or this user left it."""
        if event["user_id"] in (None, self.scope["user"].pk):
            await self.close(code=CLOSE_ROOM_NOT_FOUND)

    async def _edit(self, frame: dict[str, Any], message_id: int | None) -> None:
        form = MessageForm(data={"content": frame.get("content")})
        if message_id is None:
            await self._refuse(_("Only the room's last message can be edited."))
        elif not form.is_valid():
            await self._refuse(" ".join(str(error) for error in form.errors["content"]))
        else:
            await actions.message_edit(
                room_id=self.room.pk,
                author=self.scope["user"],
                message_id=message_id,
                content=form.cleaned_data["content"],
            )

    async def _refuse(self, reason: str) -> None:
        await self.send(text_data=rendering.composer_answer(error=reason))
