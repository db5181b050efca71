"""Reading the HTML fragments the server sends over the websocket."""

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator

_ARTICLE = re.compile(
    r'<article id="message-(?P<pk>\d+)" class="message message--(?P<role>\w+)[^"]*"'
    r'[^>]*data-seq="(?P<seq>\d+)"[^>]*'
    r'data-status="(?P<status>\w+)">(?P<inner>.*?)</article>',
    re.S,
)
_BODY = re.compile(r'<div class="message__body">(?P<body>.*?)</div>\s*(?=<|$)', re.S)


@dataclass(frozen=True)
class Shown:
    """A message as a fragment shows it."""

    pk: int
    role: str
    seq: int
    status: str
    text: str
    html: str
    # The message body alone: the HTML the message's text was rendered to.
    body: str = ""


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text_of(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts).replace("\n\n", "\n").strip()


def messages_in(frame: str) -> list[Shown]:
    shown = []
    for match in _ARTICLE.finditer(frame):
        body = _BODY.search(match["inner"])
        shown.append(
            Shown(
                pk=int(match["pk"]),
                role=match["role"],
                seq=int(match["seq"]),
                status=match["status"],
                text=text_of(body["body"]) if body else "",
                html=match["inner"],
                body=body["body"] if body else "",
            )
        )
    return shown


_TAIL = re.compile(r'<div class="message__tail">(?P<tail>.*?)</div>(?=<span class="typing")', re.S)
_BLOCKS = re.compile(r'data-blocks="(\d+)"')


class Page:
    """The messages a room page shows, kept as static/chat/chat.js keeps them: each
    message's newest version, and a streaming reply's deltas (chat.deltas) applied
    when they follow what it shows."""

    def __init__(self) -> None:
        self.shown: dict[int, Shown] = {}
        # A streaming reply's finished blocks (HTML, count) and tail.
        self._parts: dict[int, tuple[str, int, str]] = {}

    def feed(self, frame: str) -> list[Shown]:
        """The messages `frame` changed, as the page now shows them."""
        if frame.startswith('{"delta"'):
            changed = self._apply(json.loads(frame)["delta"])
            return [changed] if changed else []
        changed = []
        for message in messages_in(frame):
            current = self.shown.get(message.pk)
            if current is not None and message.seq <= current.seq:
                continue
            self.shown[message.pk] = message
            self._parts.pop(message.pk, None)
            tail, blocks = _TAIL.search(message.body), _BLOCKS.search(frame_article(frame, message))
            if tail and blocks:
                finished = message.body[: tail.start()]
                self._parts[message.pk] = (finished, int(blocks[1]), tail["tail"])
            changed.append(message)
        return changed

    def _apply(self, delta: dict) -> Shown | None:
        current, parts = self.shown.get(delta["message"]), self._parts.get(delta["message"])
        if current is None or parts is None or delta["seq"] <= current.seq:
            return None
        finished, count, tail = parts
        if delta["start"] > count or (delta["keep"] and delta["base"] != current.seq):
            return None  # the page keeps what it shows, and asks for the message
        finished += "".join(delta["blocks"][count - delta["start"] :])
        count = max(count, delta["start"] + len(delta["blocks"]))
        kept = tail.encode("utf-16-le")[: 2 * delta["keep"]].decode("utf-16-le")
        tail = kept + delta["tail"]
        self._parts[current.pk] = (finished, count, tail)
        body = finished + tail
        shown = replace(current, seq=delta["seq"], text=text_of(body), body=body)
        self.shown[current.pk] = shown
        return shown


def frame_article(frame: str, message: Shown) -> str:
    """The opening tag of `message`'s article in `frame`."""
    start = frame.index(f'<article id="message-{message.pk}"')
    return frame[start : frame.index(">", start)]


def is_delta(frame: str) -> bool:
    return frame.startswith('{"delta"')


async def receive_until(
    communicator: WebsocketCommunicator, done: Callable[[str], bool], *, within: float = 10.0
) -> list[str]:
    """Collect frames until `done(frame)` is true; fail if it never is."""
    frames: list[str] = []
    async with asyncio.timeout(within):
        while True:
            frame = await communicator.receive_from(timeout=within)
            frames.append(frame)
            if done(frame):
                return frames


def reply_finished(frame: str) -> bool:
    return any(m.role == "assistant" and m.status != "streaming" for m in messages_in(frame))


def presence_in(frame: str) -> list[str] | None:
    """The names a presence fragment lists, or None if the frame is not one."""
    if 'id="presence"' not in frame:
        return None
    parts = frame.split('class="presence__name">')[1:]
    return [text_of(part.split("</span>")[0]) for part in parts]
