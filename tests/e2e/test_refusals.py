"""What the room page says when the server will not have its socket, and what
works from the keyboard mid-reply, in Chromium. JavaScript errors fail every
test here (conftest's new_context), the order scripts load in included."""

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import last_reply, open_tab, send
from tests.e2e.slowlink import SlowLink
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# Three sockets per user: the fourth tab is refused (4429). One question may wait.
SERVER_ENV = {"CHAT_MAX_CONNECTIONS_PER_USER": "3", "CHAT_QUEUE_LIMIT": "1"}
FAST_RECONNECT = "htmx.config.wsReconnectDelay = () => 300"
HTMX = "**/django_htmx/htmx-2.min.js"


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    path = new_room("Refusals")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    return path


@pytest.fixture
def link(app_server: DaphneServer) -> Iterator[SlowLink]:
    """A network the test can take down, with no delay of its own."""
    plain = SlowLink(app_server.port, delay=0).start()
    yield plain
    plain.stop()


def test_stop_from_the_keyboard_mid_reply_keeps_its_focus(page: Page, room: str, model: FakeOpenAI):
    model.queue(Reply(words(400), tokens_per_second=30))
    send(page, "A long one, please")
    reply = last_reply(page)
    expect(reply.locator(".message__body")).to_contain_text("word3")
    typing = reply.locator(".typing")
    expect(typing).to_have_attribute("role", "img")
    expect(typing).to_have_accessible_name("Replying…")
    # From the composer, back one stop: the reply's Stop.
    page.get_by_label("Message", exact=True).focus()
    page.keyboard.press("Shift+Tab")
    page.evaluate(
        """() => {
        window.focusSeen = [];
        const name = () => document.activeElement.textContent.trim().slice(0, 20);
        window.watching = setInterval(() => window.focusSeen.push(name()), 20);
    }"""
    )
    seq = int(reply.get_attribute("data-seq"))
    expect(reply).not_to_have_attribute("data-seq", str(seq))
    page.wait_for_timeout(800)  # a couple of dozen updates
    seen = set(page.evaluate("clearInterval(window.watching) || window.focusSeen"))
    assert seen == {"Stop"}, f"focus left Stop during updates: {seen}"
    page.keyboard.press("Enter")
    expect(reply).to_have_attribute("data-status", "stopped")
    assert int(reply.get_attribute("data-seq")) > seq + 10


def test_a_refused_send_puts_the_text_back_with_the_reason(
    page: Page, room: str, model: FakeOpenAI
):
    model.queue(Reply(words(300), tokens_per_second=20), Reply("Second."))
    send(page, "first")
    expect(last_reply(page).locator(".message__body")).to_contain_text("word1")
    send(page, "second")
    expect(page.locator("#queue li")).to_have_count(1)
    field = page.get_by_label("Message", exact=True)
    field.fill("one too many")
    field.press("Enter")
    expect(page.get_by_role("alert")).to_have_text(
        "1 question is already waiting for the AI. Send yours once it is answered."
    )
    expect(field).to_have_value("one too many")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    last_reply(page).get_by_role("button", name="Stop").click()


def test_a_tab_past_the_connection_bound_says_why_and_stops_retrying(
    context: BrowserContext, room: str
):
    open_tab(context, room)
    open_tab(context, room)
    sockets: list[str] = []
    fourth = context.new_page()
    fourth.on("websocket", lambda socket: sockets.append(socket.url))
    fourth.goto(room)
    state = fourth.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "toomany")
    expect(state).to_have_text("Too many open tabs: close one, then reload.")
    expect(fourth.locator("#composer-note")).to_have_text(
        "Too many open tabs: close one, then reload."
    )
    expect(fourth.get_by_role("button", name="Send")).to_be_disabled()
    fourth.wait_for_timeout(2_000)
    assert len(sockets) == 1, "a refusal is final: no retry"


def test_a_room_deleted_while_the_tab_was_offline_says_so_on_reconnecting(
    new_context: Callable[..., BrowserContext], link: SlowLink, app_server: DaphneServer
):
    context = new_context(base_url=link.http_url)
    page = context.new_page()
    page.goto("/chat/new/")
    page.get_by_label("Name").fill("Soon gone")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url("**/chat/*/")
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "online")
    page.evaluate(FAST_RECONNECT)
    page.get_by_label("Message", exact=True).fill("words for a room that goes")

    link.go_down()
    expect(state).to_have_attribute("data-state", "offline")
    owner = context.new_page()
    owner.goto(f"{app_server.http_url}{page.url.split(str(link.port), 1)[1]}delete/")
    owner.get_by_role("button", name="Delete for everyone").click()
    owner.wait_for_url("**/chat/")
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    link.come_back()

    # Refused at connect (the room is gone): accepted, then closed with 4404.
    expect(state).to_have_attribute("data-state", "gone", timeout=10_000)
    expect(state).to_have_text("This room no longer exists")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.get_by_label("Message", exact=True)).to_have_value("words for a room that goes")
    page.wait_for_timeout(2_000)
    assert len(sockets) == 1, "a refusal is final: no retry"


def test_the_room_list_says_when_its_socket_is_signed_out(
    browser: Browser,
    new_context: Callable[..., BrowserContext],
    link: SlowLink,
    app_server: DaphneServer,
):
    # A session of its own, which the test ends.
    context = new_context(
        base_url=link.http_url, storage_state=sign_up(browser, app_server, "carol")
    )
    page = context.new_page()
    with page.expect_websocket():
        page.goto("/chat/")
    page.evaluate(FAST_RECONNECT)
    link.go_down()
    other = context.new_page()
    other.goto(f"{app_server.http_url}/chat/")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url("**/accounts/login/**")
    link.come_back()
    notice = page.locator("#signed-out-login")
    expect(notice).to_be_visible(timeout=10_000)
    expect(notice).to_have_text("You are signed out. Log in")


def test_a_page_whose_htmx_failed_to_load_raises_no_error_and_says_so(
    context: BrowserContext, room: str
):
    context.route(HTMX, lambda route: route.abort())
    page = context.new_page()
    page.goto(room)
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "unloaded")
    expect(state).to_have_text("Not connected: the page did not load completely. Reload it.")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.get_by_label("Message", exact=True).fill("kept")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_have_value("kept")


def test_a_slow_htmx_and_a_reload_mid_reply_raise_no_error(
    context: BrowserContext, room: str, model: FakeOpenAI
):
    def late(route: Route) -> None:
        time.sleep(1.0)
        route.continue_()

    model.queue(Reply(words(120), tokens_per_second=30))
    page = context.new_page()
    page.goto(room)
    send(page, "Keep talking")
    expect(last_reply(page).locator(".message__body")).to_contain_text("word5")
    context.route(HTMX, late)
    page.reload()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(last_reply(page).locator(".message__body")).to_have_text(words(120))
