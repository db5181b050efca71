"""The server restarting under a real browser: a reply cut off, then continued; and a
session that ended while the page was open."""

import signal
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import last_reply, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# htmx's ws extension retries an abnormal close with a backoff of up to 64 s;
# these tests are about what the page shows once it is back, so it retries fast.
FAST_RECONNECT = "htmx.config.wsReconnectDelay = () => 300"


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def test_a_reply_cut_off_by_a_restart_shows_interrupted_then_continue_finishes_it(
    page: Page, new_room: Callable[..., str], app_server: DaphneServer, model: FakeOpenAI
):
    new_room("Restarted room")
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "online")
    page.evaluate(FAST_RECONNECT)
    model.queue(Reply(words(300), tokens_per_second=20))
    send(page, "Three hundred words, please")
    expect(last_reply(page)).to_contain_text("word10")

    # A deploy: SIGTERM, then a second one, which ends the grace period at once.
    app_server.process.send_signal(signal.SIGTERM)
    page.wait_for_timeout(1_500)
    app_server.process.send_signal(signal.SIGTERM)
    assert app_server.process.wait(timeout=15) == 0
    expect(state).to_have_attribute("data-state", "offline")
    app_server.start()

    expect(state).to_have_attribute("data-state", "online", timeout=15_000)
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "interrupted")
    expect(reply.locator(".message__note")).to_have_text(
        "Interrupted: this reply may be incomplete."
    )
    kept = reply.locator(".message__body").text_content().strip()
    assert words(300).startswith(kept) and "word10" in kept

    model.queue(Reply(" and that is the end."))
    reply.get_by_role("button", name="Continue").click()
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".message__body")).to_have_text(f"{kept} and that is the end.")
    expect(reply.get_by_role("button", name="Continue")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_a_session_that_ended_shows_the_signed_out_notice_and_keeps_the_text(
    browser: Browser,
    new_context: Callable[..., BrowserContext],
    app_server: DaphneServer,
):
    context = new_context(storage_state=sign_up(browser, app_server, "bob"))
    page = context.new_page()
    page.goto("/chat/new/")
    page.get_by_label("Name").fill("Bob's room")
    page.get_by_role("button", name="Create room").click()
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "online")
    page.evaluate(FAST_RECONNECT)
    page.get_by_label("Message", exact=True).fill("half a thought")

    # Logged out in another tab; the page finds out when its socket reconnects.
    other = context.new_page()
    other.goto("/chat/")
    other.get_by_role("button", name="Log out").click()
    # The login page must finish loading before the server goes: a deferred script
    # cut off by the stop (htmx) makes the next one fail with "htmx is not defined".
    other.wait_for_url("**/accounts/login/", wait_until="load")
    other.close()
    app_server.stop()
    app_server.start()

    expect(state).to_have_attribute("data-state", "signedout", timeout=15_000)
    expect(state).to_contain_text("You are signed out.")
    login = page.get_by_role("link", name="Log in")
    expect(login).to_be_visible()
    assert login.get_attribute("href") == f"/accounts/login/?next={urlsplit(page.url).path}"
    expect(page.get_by_label("Message", exact=True)).to_have_value("half a thought")
    # The server's final word: the page does not keep trying.
    page.wait_for_timeout(1_500)
    expect(state).to_have_attribute("data-state", "signedout")
