"""Replies that survive what browsers and servers do: a reload, Stop from another tab,
the server going away and coming back. What each tab shows, in a real browser."""

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# Records the reply's text as the server rendered it, before htmx opens the
# socket (this listener is registered before any page script), then every
# 25 ms what the tab shows.
WATCH_REPLY = """
window.seen = [];
document.addEventListener("DOMContentLoaded", () => {
    const reply = () => document.querySelector("#messages .message--assistant:last-of-type");
    const text = () => reply().querySelector(".message__body").textContent.trim();
    window.firstPaint = reply() ? { text: text(), status: reply().dataset.status } : null;
    setInterval(() => { if (reply()) window.seen.push(text()); }, 25);
});
"""


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    path = new_room("Resilient room")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    return path


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def test_reload_mid_reply_shows_the_text_so_far_at_once_then_the_rest(
    page: Page, room: str, model: FakeOpenAI
):
    text = words(80)
    model.queue(Reply(text, tokens_per_second=20))
    send(page, "Eighty words, please")
    expect(last_reply(page)).to_contain_text("word30")

    page.add_init_script(WATCH_REPLY)
    page.reload()

    first = page.evaluate("window.firstPaint")
    # The page itself carries the text saved so far: no blank reply while the socket opens.
    assert first is not None and first["status"] == "streaming", first
    assert first["text"] and text.startswith(first["text"]), first
    assert len(first["text"]) < len(text)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=15_000)
    # The model's text, exactly once.
    expect(reply.locator(".message__body")).to_have_text(text)
    assert reply.locator(".message__body").text_content().count("word79") == 1
    # Every state the tab showed was a prefix of the reply, each at least as
    # long as the one before: no gap, no repeated words, never backwards.
    seen = page.evaluate("window.seen")
    assert [shown for shown in seen if not text.startswith(shown)] == []
    lengths = [len(shown) for shown in seen]
    assert lengths == sorted(lengths)
    growing = {n for n in lengths if len(first["text"]) < n < len(text)}
    assert len(growing) >= 3, "the reply went on growing after the reload"
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_stop_in_one_tab_stops_the_reply_in_every_tab(
    page: Page, context: BrowserContext, room: str, model: FakeOpenAI
):
    text = words(200)
    model.queue(Reply(text, tokens_per_second=20))
    other = open_tab(context, room)
    send(page, "Talk for a while")
    expect(last_reply(other)).to_contain_text("word10")

    other.get_by_role("button", name="Stop").click()

    tabs = (page, other)
    for tab in tabs:
        reply = last_reply(tab)
        expect(reply).to_have_attribute("data-status", "stopped")
        expect(reply.locator(".message__note")).to_have_text("Stopped.")
        expect(reply.get_by_role("button", name="Stop")).to_have_count(0)
        expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
        expect(tab.get_by_role("button", name="Send")).to_be_enabled()
    shown = [last_reply(tab).locator(".message__body").text_content().strip() for tab in tabs]
    assert shown[0] == shown[1], "both tabs keep the same partial text"
    assert text.startswith(shown[0]) and 10 < len(shown[0].split()) < 200, shown[0]
    # Stopped means stopped: nothing more arrives.
    page.wait_for_timeout(1_000)
    for tab in tabs:
        expect(last_reply(tab).locator(".message__body")).to_have_text(shown[0])


# Last in the module: it restarts the module's server.
def test_indicator_follows_the_server_down_and_back_up(
    page: Page, room: str, app_server: DaphneServer, model: FakeOpenAI
):
    state = page.locator("#connection-state")
    # htmx's ws extension retries an abnormal close (1006) with a full-jitter
    # backoff of up to 64 s. This test is about our indicator and the page
    # working again, not htmx's backoff, so it retries every 300 ms here.
    page.evaluate("htmx.config.wsReconnectDelay = () => 300")

    app_server.stop()
    expect(state).to_have_attribute("data-state", "offline")
    expect(state).to_have_text("Offline, reconnecting…")
    # Nothing can be sent while offline, and the composer says so.
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.locator("#composer-note")).to_contain_text("Offline: nothing is sent.")

    app_server.start()  # the same port, so the page's socket URL still holds
    expect(state).to_have_attribute("data-state", "online", timeout=15_000)
    expect(state).to_have_text("Live")

    model.queue(Reply("Back again, all in one piece."))
    send(page, "Are you there?")
    expect(page.locator("#messages .message--user .message__body").last).to_have_text(
        "Are you there?"
    )
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".message__body")).to_have_text("Back again, all in one piece.")


def test_the_stop_button_stays_the_same_element_while_the_reply_grows(
    page: Page, room: str, model: FakeOpenAI
):
    """Else a click that starts on one version of the reply and ends on the next is lost."""
    model.queue(Reply(words(200), tokens_per_second=40))
    send(page, "Talk for a while")
    expect(last_reply(page)).to_contain_text("word5")
    stop = "document.querySelector('#messages article:last-of-type form.message__action button')"
    page.evaluate(f"window.stopButton = {stop}")
    expect(last_reply(page)).to_contain_text("word40")
    # Dozens of versions later, the reply's Stop is the element it was.
    assert page.evaluate("window.stopButton.isConnected && window.stopButton.textContent.trim()")
    assert page.evaluate(f"window.stopButton === {stop}")
    page.get_by_role("button", name="Stop").click()
    expect(last_reply(page)).to_have_attribute("data-status", "stopped")
