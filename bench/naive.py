"""The usual Channels chat design, kept only as the benchmark's reference point.

The model streams inside the sender's receive(), and every token delta is its
own group_send that each tab appends. Two known costs follow: one layer
message per token per tab, and the sender's own tab gets nothing until
receive() returns, while its inbox fills past the layer's capacity.
"""

import json
from html import escape
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from chat import llm
from chat.models import Message, Room


def token_fragment(*, seq: int, delta: str, done: bool) -> str:
    """What a tab appends: the delta, numbered so a gap or a repeat shows."""
    return f'<span data-seq="{seq}" data-done="{int(done)}">{escape(delta)}</span>'


class NaiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = f"naive-{self.room_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        content = json.loads(text_data or "{}")["content"]
        room = await Room.objects.aget(pk=self.room_id)
        await Message.objects.acreate(room=room, role=Message.Role.USER, content=content)
        reply, seq = "", 0
        async for delta in llm.stream_reply([{"role": "user", "content": content}]):
            reply += delta
            await self._broadcast(seq=seq, delta=delta, done=False)
            seq += 1
        await Message.objects.acreate(room=room, role=Message.Role.ASSISTANT, content=reply)
        await self._broadcast(seq=seq, delta="", done=True)

    async def _broadcast(self, **token: Any) -> None:
        await self.channel_layer.group_send(self.group, {"type": "chat.token", **token})

    async def chat_token(self, event: dict[str, Any]) -> None:
        await self.send(
            text_data=token_fragment(seq=event["seq"], delta=event["delta"], done=event["done"])
        )
