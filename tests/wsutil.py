"""Reading the HTML fragments the server sends over the websocket."""

import asyncio
import json
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator

from tests.slow import patience


def send(content: str, *, client_id: str | None = None) -> str:
    """A message frame, as the room page's form sends it through htmx's ws extension."""
    frame: dict = {"content": content, "HEADERS": {"HX-Request": "true"}}
    if client_id is not None:
        frame["client_id"] = client_id
    return json.dumps(frame)


def action(name: str, **fields: object) -> str:
    """An action frame: stop, cancel, edit, continue, sync, typing."""
    return json.dumps({"action": name, **fields})


_ARTICLE = re.compile(
    r'<article id="message-(?P<pk>\d+)" class="message message--(?P<role>\w+)[^"]*"'
    r'[^>]*data-seq="(?P<seq>\d+)"[^>]*'
    r'data-status="(?P<status>\w+)">(?P<inner>.*?)</article>',
    re.S,
)
_BODY = re.compile(
    r'<div class="message__body">(?P<body>(?:<div class="message__tail">.*?</div>|.)*?)</div>'
    r"\s*(?=<|$)",
    re.S,
)


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
    # The room's version at the message's last change (0 in a delta's article).
    version: int = 0


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


_VERSION = re.compile(r'data-version="(\d+)"')


def messages_in(frame: str) -> list[Shown]:
    shown = []
    for match in _ARTICLE.finditer(frame):
        body = _BODY.search(match["inner"])
        version = _VERSION.search(match[0])
        shown.append(
            Shown(
                pk=int(match["pk"]),
                role=match["role"],
                seq=int(match["seq"]),
                status=match["status"],
                text=text_of(body["body"]) if body else "",
                html=match["inner"],
                body=body["body"] if body else "",
                version=int(version[1]) if version else 0,
            )
        )
    return shown


_BODY_START = '<div class="message__body">'
_TAIL = re.compile(r'<div class="message__tail">(?P<tail>.*?)</div>(?=<span class="typing")', re.S)
_BLOCKS = re.compile(r'data-blocks="(\d+)"')


class Page:
    """The messages a room page shows, kept as static/chat/chat.js keeps them: each
    message's newest version, and a streaming reply's deltas (chat.deltas) applied
    when they follow what it shows."""

    def __init__(self) -> None:
        self.shown: dict[int, Shown] = {}
        self.articles: dict[int, str] = {}
        # A streaming reply's finished blocks (HTML, count) and tail.
        self._parts: dict[int, tuple[str, int, str]] = {}

    def feed(self, frame: str) -> str:
        """Take in `frame`; a delta comes back as the article it leaves on the page
        (nothing if it does not apply), any other frame as it is."""
        if is_delta(frame):
            return self._apply(json.loads(frame)["delta"])
        for match in _ARTICLE.finditer(frame):
            message = messages_in(match[0])[0]
            current = self.shown.get(message.pk)
            if current is not None and message.seq <= current.seq:
                continue
            self.shown[message.pk], self.articles[message.pk] = message, match[0]
            self._parts.pop(message.pk, None)
            tail, blocks = _TAIL.search(match[0]), _BLOCKS.search(match[0])
            if tail and blocks:
                finished = match[0][match[0].index(_BODY_START) + len(_BODY_START) : tail.start()]
                self._parts[message.pk] = (finished, int(blocks[1]), tail["tail"])
        return frame

    def _apply(self, delta: dict) -> str:
        pk = delta["message"]
        current, parts = self.shown.get(pk), self._parts.get(pk)
        if current is None or parts is None or delta["seq"] <= current.seq:
            return ""
        finished, count, tail = parts
        if delta["start"] > count or (delta["keep"] and delta["base"] != current.seq):
            return ""  # the page keeps what it shows, and asks for the message
        finished += "".join(delta["blocks"][count - delta["start"] :])
        count = max(count, delta["start"] + len(delta["blocks"]))
        kept = tail.encode("utf-16-le")[: 2 * delta["keep"]].decode("utf-16-le")
        tail = kept + delta["tail"]
        self._parts[pk] = (finished, count, tail)
        article = self.articles[pk]
        body = f'{finished}<div class="message__tail">{tail}</div>'
        start = article.index(_BODY_START) + len(_BODY_START)
        article = article[:start] + body + article[article.index('<span class="typing"', start) :]
        article = re.sub(r'data-seq="\d+"', f'data-seq="{delta["seq"]}"', article, count=1)
        article = re.sub(r'data-blocks="\d+"', f'data-blocks="{count}"', article, count=1)
        self.articles[pk] = article
        self.shown[pk] = messages_in(article)[0]
        return article


def room_version_in(frame: str) -> int | None:
    """The room version a page or a catch-up answer brings a tab up to."""
    found = re.search(
        r'id="room-version" hidden (?:hx-swap-oob="true" )?data-version="(\d+)"', frame
    )
    return int(found[1]) if found else None


def is_delta(frame: str) -> bool:
    return frame.startswith('{"delta"')


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
    """Collect frames until `done(frame)` is true; fail if it never is. A delta is
    collected as the article it leaves on the page (Page.feed)."""
    frames: list[str] = []
    page = page_of(communicator)
    async with asyncio.timeout(patience(within)):
        while True:
            frame = page.feed(await communicator.receive_from(timeout=patience(within)))
            frames.append(frame)
            if done(frame):
                return frames


_pages: "weakref.WeakKeyDictionary[object, Page]" = weakref.WeakKeyDictionary()


def page_of(socket: object) -> Page:
    """The page a test's socket stands for, kept across the calls that read it."""
    page = _pages.get(socket)
    if page is None:
        page = _pages[socket] = Page()
    return page


def reply_finished(frame: str) -> bool:
    return any(m.role == "assistant" and m.status != "streaming" for m in messages_in(frame))


def presence_in(frame: str) -> list[str] | None:
    """The names a presence fragment lists, or None if the frame is not one."""
    if 'id="presence"' not in frame:
        return None
    parts = frame.split('class="presence__name">')[1:]
    return [text_of(part.split("</span>")[0]) for part in parts]
