"""Reading the HTML fragments the server sends over the websocket."""

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator

from tests.slow import patience

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


class Communicator(WebsocketCommunicator):
    """channels' test socket, with its waits (1 s by default: to connect, for the
    next frame, to close) allowing for a busy machine. A consumer's connect and
    disconnect write to Redis and the database, and a disconnect cut short leaves
    the socket counted and present."""

    async def receive_output(self, timeout: float = 1) -> dict:  # noqa: ASYNC109 (channels' signature)
        return await super().receive_output(timeout=patience(timeout))

    async def disconnect(self, code: int = 1000, timeout: float = 5) -> None:  # noqa: ASYNC109
        await super().disconnect(code, timeout=patience(timeout))


async def receive_until(
    communicator: WebsocketCommunicator, done: Callable[[str], bool], *, within: float = 10.0
) -> list[str]:
    """Collect frames until `done(frame)` is true; fail if it never is."""
    frames: list[str] = []
    async with asyncio.timeout(patience(within)):
        while True:
            frame = await communicator.receive_from(timeout=patience(within))
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
