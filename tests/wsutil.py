"""Reading the HTML fragments the server sends over the websocket."""

import asyncio
import dataclasses
import functools
import json
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator

from chat import deltas
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
    html: str
    # The message body alone: the HTML the message's text was rendered to.
    body: str = ""
    # The room's version at the message's last change (0 in a delta's article).
    version: int = 0

    # Read when asked: parsing a long reply's HTML at every delta was most of what
    # the benchmark's clients spent (docs/benchmark.md).
    @functools.cached_property
    def text(self) -> str:
        return text_of(self.body) if self.body else ""


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
                html=match["inner"],
                body=body["body"] if body else "",
                version=int(version[1]) if version else 0,
            )
        )
    return shown


_BODY_START = '<div class="message__body">'
_TAIL = re.compile(r'<div class="message__tail">(?P<tail>.*?)</div>(?=<span class="typing")', re.S)
_BLOCKS = re.compile(r'data-blocks="(\d+)"')
# As static/chat/chat.js asks for a message: after this long, then twice as long each time.
SILENT_AFTER, ASK_AT_MOST_EVERY = 2.0, 30.0


class Page:
    """The messages a room page shows, kept as static/chat/chat.js keeps them: each
    message's newest version, and a streaming reply's deltas (chat.deltas) applied
    when they follow what it shows. Where chat.js would ask for a message ("sync"),
    the frame waits in `asks` for whoever drives the page to send it."""

    def __init__(self) -> None:
        self.shown: dict[int, Shown] = {}
        self.articles: dict[int, str] = {}
        # A streaming reply's finished blocks (HTML, count) and tail; the tail is
        # None after a snapshot that had text, as chat.js cannot read it back exactly.
        self._parts: dict[int, tuple[str, int, str | None]] = {}
        self.asks: list[str] = []
        self._next_ask: dict[int, tuple[float, float]] = {}  # earliest next ask, wait after it
        self._heard_at: dict[int, float] = {}

    def feed(self, frame: str) -> str:
        """Take in `frame`; a delta frame comes back as the article it leaves on the page
        (nothing if none of its deltas applies), any other frame as it is."""
        if is_delta(frame):
            applied = ""
            for delta in deltas.parse(frame):
                result = self._apply(delta)
                if result is None:
                    break
                applied = result or applied
            return applied
        for match in _ARTICLE.finditer(frame):
            message = messages_in(match[0])[0]
            current = self.shown.get(message.pk)
            if current is not None and message.seq <= current.seq:
                continue
            self.shown[message.pk], self.articles[message.pk] = message, match[0]
            self._heard(message.pk)
            self._parts.pop(message.pk, None)
            tail, blocks = _TAIL.search(match[0]), _BLOCKS.search(match[0])
            if tail and blocks:
                finished = match[0][match[0].index(_BODY_START) + len(_BODY_START) : tail.start()]
                known = None if tail["tail"] else ""
                self._parts[message.pk] = (finished, int(blocks[1]), known)
            gap = current is not None and message.seq > current.seq + 1
            if gap and message.status == "streaming":
                self.ask(message.pk)
        return frame

    def ask(self, pk: int, now: float | None = None) -> None:
        """Ask for a message as chat.js's askFor does: at most once per wait."""
        now = time.monotonic() if now is None else now
        earliest, wait = self._next_ask.get(pk, (0.0, SILENT_AFTER))
        if pk not in self.shown or now < earliest:
            return
        self._next_ask[pk] = (now + wait, min(wait * 2, ASK_AT_MOST_EVERY))
        self.asks.append(json.dumps({"action": "sync", "message": pk, "seq": self.shown[pk].seq}))

    def check_silent(self, now: float | None = None) -> None:
        """Ask for each streaming message silent for SILENT_AFTER, as chat.js does each second."""
        now = time.monotonic() if now is None else now
        for pk, shown in self.shown.items():
            if shown.status == "streaming" and now - self._heard_at.get(pk, now) > SILENT_AFTER:
                self.ask(pk, now)

    def _heard(self, pk: int) -> None:
        self._heard_at[pk] = time.monotonic()
        self._next_ask.pop(pk, None)

    def _apply(self, delta: deltas.Delta) -> str | None:
        """The article after `delta`, "" if it is one the page has, None if it does not apply."""
        pk = delta.message
        current, parts = self.shown.get(pk), self._parts.get(pk)
        if current is None or parts is None or current.status != "streaming":
            return None
        if delta.seq <= current.seq:
            return ""
        finished, count, tail = parts
        whole = delta.whole
        skip = count - (delta.start or 0) if whole else 0  # blocks the page has already
        if not (0 <= skip <= len(delta.cuts) if whole else delta.base == current.seq):
            self.ask(pk)  # the page keeps what it shows, and asks for the message
            return None
        if tail is None and not whole:
            self.ask(pk)  # the answer is followed by a whole tail
            return None
        old = (tail or "").encode("utf-16-le")
        html = delta.text.encode("utf-16-le")
        if not whole:
            html = old[: 2 * delta.keep] + html + old[len(old) - 2 * delta.end :]
        at = 0
        for index, cut in enumerate(delta.cuts):
            if index >= skip:
                finished += html[at : at + 2 * cut].decode("utf-16-le")
            at += 2 * cut
        tail = html[at:].decode("utf-16-le")
        count += len(delta.cuts) - skip
        self._parts[pk] = (finished, count, tail)
        self._heard(pk)
        article = self.articles[pk]
        body = f'{finished}<div class="message__tail">{tail}</div>'
        start = article.index(_BODY_START) + len(_BODY_START)
        typing = article.index('<span class="typing"', start)
        article = article[:start] + body + article[typing:]
        article = re.sub(r'data-seq="\d+"', f'data-seq="{delta.seq}"', article, count=1)
        article = re.sub(r'data-blocks="\d+"', f'data-blocks="{count}"', article, count=1)
        self.articles[pk] = article
        # Built here rather than parsed again: a long reply's article is tens of KB.
        inner = article[article.index(">") + 1 : article.rindex("</article>")]
        body_end = article.index("</div>", article.index('<span class="typing"', start))
        self.shown[pk] = dataclasses.replace(
            current, seq=delta.seq, html=inner, body=article[start:body_end]
        )
        return article


def room_version_in(frame: str) -> int | None:
    """The room version a page or a catch-up answer brings a tab up to."""
    found = re.search(
        r'id="room-version" hidden (?:hx-swap-oob="true" )?data-version="(\d+)"', frame
    )
    return int(found[1]) if found else None


def is_delta(frame: str) -> bool:
    return frame.startswith("[")


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
