"""Broadcasts are delivered at most once: a page that misses updates, even a reply's
last one, still ends showing what the server saved, with no reload."""

import json
import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply

pytestmark = pytest.mark.integration

ROOM_SOCKET = re.compile(r"/ws/chat/\d+/$")
FINAL = re.compile(r'message--assistant[^>]*data-status="(complete|stopped|error|interrupted)"')


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    return new_room("Lossy room")


class SocketSwitch:
    """The page's room socket, reloaded through a switch: cut, the page goes offline and
    each reconnect is refused with 1012 until it is restored."""

    def __init__(self, page: Page) -> None:
        self.page, self.down = page, False
        self.sockets: list[WebSocketRoute] = []
        page.route_web_socket(ROOM_SOCKET, self._route)
        page.reload()
        self._expect_state("online")

    def cut(self) -> None:
        self.down = True
        self.sockets[-1].close(code=1012, reason="down")
        self._expect_state("offline")

    def restore(self) -> None:
        self.down = False
        self._expect_state("online", timeout=15_000)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.down:
            ws.close(code=1012, reason="down")
            return
        self.sockets.append(ws)
        ws.connect_to_server()

    def _expect_state(self, state: str, timeout: float | None = None) -> None:
        indicator = self.page.locator("#connection-state")
        expect(indicator).to_have_attribute("data-state", state, timeout=timeout)


class LossyLink:
    """The page's room socket, reloaded through a link that drops what `drop` picks on
    its way to the page, noting when it dropped, when the page asked for a message
    and when a reply's final state came."""

    def __init__(self, page: Page, drop: Callable[[str], bool]) -> None:
        self.drop = drop
        self.dropped: list[float] = []
        self.asked: list[float] = []
        self.ended: list[float] = []
        page.route_web_socket(ROOM_SOCKET, self._route)
        page.reload()
        expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")

    def _route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if isinstance(message, str) and FINAL.search(message) and not self.ended:
                self.ended.append(time.monotonic())
            if isinstance(message, str) and self.drop(message):
                self.dropped.append(time.monotonic())
                return
            ws.send(message)

        def to_server(message: str | bytes) -> None:
            if isinstance(message, str) and '"message"' in message and '"sync"' in message:
                self.asked.append(time.monotonic())
            server.send(message)

        server.on_message(to_page)
        ws.on_message(to_server)


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def test_a_reply_whose_last_update_was_lost_still_ends_right(
    page: Page, room: str, model: FakeOpenAI
):
    """Every frame carrying the reply's final state is dropped on its way to the page."""
    link = LossyLink(page, lambda message: bool(FINAL.search(message)) and not link.dropped)
    text = words(12)
    model.queue(Reply(text, tokens_per_second=40))
    send(page, "Twelve words")

    reply = last_reply(page)
    expect(reply.locator(".message__body")).to_have_text(text, timeout=10_000)
    # The page held a streaming reply whose end never came; silent for 2 s, it asked.
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    assert len(link.dropped) == 1
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()


def test_a_reply_that_finished_while_the_socket_was_down_shows_its_end(
    page: Page, room: str, model: FakeOpenAI
):
    switch = SocketSwitch(page)
    text = words(40)
    model.queue(Reply(text, tokens_per_second=20))
    send(page, "Forty words")
    reply = last_reply(page)
    expect(reply.locator(".message__body")).to_contain_text("word5")

    switch.cut()
    shown_while_down = reply.locator(".message__body").text_content() or ""
    # The reply ends on the server (40 words at 20/s) while the page cannot hear it.
    time.sleep(2.5)
    assert reply.get_attribute("data-status") == "streaming"
    assert len(shown_while_down) < len(text)

    switch.restore()
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)
    expect(reply.locator(".message__body")).to_have_text(text)


def test_a_tab_offline_during_an_edit_and_a_regenerate_shows_both_on_reconnecting(
    page: Page, room: str, model: FakeOpenAI
):
    switch = SocketSwitch(page)
    model.queue(Reply("Rome."), Reply("Paris."), Reply("Paris, on the Seine."))
    send(page, "Capital of Frnace?")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    switch.cut()
    # Another tab, live, edits the question and then regenerates the answer.
    other = open_tab(page.context, page.url)
    question = other.locator("#messages .message--user").last
    question.locator(".message__edit summary").click()
    question.get_by_label("Edited message").fill("Capital of France?")
    question.get_by_role("button", name="Save and resend").click()
    expect(last_reply(other).locator(".message__body")).to_have_text("Paris.")
    other.get_by_role("button", name="Regenerate").click()
    expect(last_reply(other).locator(".message__body")).to_have_text("Paris, on the Seine.")
    expect(last_reply(other)).to_have_attribute("data-status", "complete")
    assert (last_reply(page).locator(".message__body").text_content() or "").strip() == "Rome."

    switch.restore()
    expect(page.locator("#messages .message--user .message__body").last).to_have_text(
        "Capital of France?"
    )
    expect(last_reply(page).locator(".message__body")).to_have_text("Paris, on the Seine.")
    expect(page.locator("#messages article")).to_have_count(2)


def test_a_page_that_misses_a_delta_asks_at_once_and_takes_up_the_stream(
    page: Page, room: str, model: FakeOpenAI
):
    """The second delta that finishes a paragraph is dropped: the next does not follow
    what the page shows, so it asks with the seq it holds, and the delta after its
    ask resends the paragraphs the page lacks with the tail (chat.deltas), well
    before the reply ends."""
    finishing = []

    def finishes_blocks(message: str) -> bool:
        head = json.loads(message.partition("\n")[0]) if message.startswith("[") else []
        if len(head) > 4 and head[4]:
            finishing.append(message)
        return len(finishing) == 2 and finishing[-1] is message

    link = LossyLink(page, finishes_blocks)
    paragraphs = [f"Paragraph {n}: " + words(8) for n in range(16)]
    model.queue(Reply("\n\n".join(paragraphs), tokens_per_second=25))
    send(page, "Sixteen paragraphs")

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)
    # One ask, while deltas still came (so not the 2 s silence rule), was enough:
    # a whole tail without the missed paragraph would not apply, and the page
    # would ask again 2 s later.
    dropped, asked, ended = link.dropped, link.asked, link.ended
    assert dropped and len(asked) == 1 and dropped[0] < asked[0] < ended[0], (dropped, asked)
    expect(reply.locator(".message__body p")).to_have_text(paragraphs)
