"""The composer in Chromium, over a slow link (tests/e2e/slowlink.py), with the
Content-Security-Policy enforced: a message is sent once, nothing typed is lost,
and nothing is sent, or queued, while the page is offline."""

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.pages import report_csp_violations
from tests.e2e.slowlink import SlowLink
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# A reply that takes a while, so a second one would show.
SLOW = " ".join(["word"] * 12)


@pytest.fixture
def link(app_server: DaphneServer) -> Iterator[SlowLink]:
    """250 ms each way between the browser and daphne."""
    slow = SlowLink(app_server.port, delay=0.25).start()
    yield slow
    slow.stop()


@pytest.fixture
def slow_page(
    new_context: Callable[..., BrowserContext], link: SlowLink, violations: list[str]
) -> Page:
    """A signed-in tab of a new room, over the slow link, its socket open."""
    context = new_context(base_url=link.http_url)
    report_csp_violations(context, violations)
    page = context.new_page()
    page.goto("/chat/new/")
    page.get_by_label("Name").fill("Slow room")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url("**/chat/*/")
    expect(send_button(page)).to_be_enabled(timeout=10_000)
    # htmx's backoff grows to a minute; these tests are about what the page does once back.
    page.evaluate("htmx.config.wsReconnectDelay = () => 300")
    return page


def field(page: Page):
    return page.get_by_label("Message", exact=True)


def send_button(page: Page):
    return page.get_by_role("button", name="Send")


def user_messages(page: Page):
    return page.locator("#messages .message--user .message__body")


def settled(page: Page, model: FakeOpenAI, replies: int) -> None:
    """Every reply asked for is complete, and nothing more arrives for a while."""
    expect(page.locator("#messages .message--assistant")).to_have_count(replies, timeout=15_000)
    expect(page.locator('#messages [data-status="streaming"]')).to_have_count(0, timeout=15_000)
    page.wait_for_timeout(1_500)
    assert len(model.requests) == replies


def test_a_double_enter_and_a_double_click_each_send_one_message(
    slow_page: Page, model: FakeOpenAI
):
    page = slow_page
    model.queue(Reply(SLOW, tokens_per_second=30), Reply(SLOW, tokens_per_second=30))
    field(page).fill("double enter")
    field(page).press("Enter")
    field(page).press("Enter")
    # Cleared and locked the moment it is sent, before the server has answered.
    expect(field(page)).to_have_value("")
    expect(send_button(page)).to_be_disabled()
    expect(user_messages(page)).to_have_count(1)
    expect(send_button(page)).to_be_enabled()

    field(page).fill("double click")
    send_button(page).dblclick()
    expect(user_messages(page)).to_have_count(2)
    settled(page, model, replies=2)
    expect(user_messages(page)).to_have_text(["double enter", "double click"])
    expect(page.locator("#queue li")).to_have_count(0)


def test_typing_after_enter_survives_a_held_answer_and_an_ime_composition(
    slow_page: Page, link: SlowLink, model: FakeOpenAI
):
    page = slow_page
    model.queue(Reply("Got it."))
    with link.holding_answers():
        field(page).press_sequentially("first")
        field(page).press("Enter")
        # Typed at once, while the server's answer is held back.
        field(page).press_sequentially("second thought")
        expect(send_button(page)).to_be_disabled()
        # A Korean composition in progress when the answer arrives.
        ime = page.context.new_cdp_session(page)
        ime.send("Input.imeSetComposition", {"text": " 한", "selectionStart": 2, "selectionEnd": 2})
    expect(user_messages(page)).to_have_text(["first"])
    expect(send_button(page)).to_be_enabled()
    ime.send("Input.imeSetComposition", {"text": " 한글", "selectionStart": 3, "selectionEnd": 3})
    ime.send("Input.insertText", {"text": " 한글"})
    expect(field(page)).to_have_value("second thought 한글")
    assert page.evaluate("document.activeElement.id") == "id_content"
    settled(page, model, replies=1)


def test_enter_while_offline_sends_nothing_now_or_later_and_keeps_the_text(
    slow_page: Page, link: SlowLink, model: FakeOpenAI
):
    page = slow_page
    model.queue(Reply("First."), Reply("Once back."))
    field(page).fill("hello")
    field(page).press("Enter")
    settled(page, model, replies=1)

    link.go_down()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "offline")
    expect(send_button(page)).to_be_disabled()
    field(page).fill("written offline")
    field(page).press("Enter")
    note = page.locator("#composer-note")
    expect(note).to_have_text(
        "Offline: nothing is sent. Your text stays here until the connection is back."
    )
    expect(note).to_have_class("composer__note composer__note--urgent")
    # The reply's controls are not held for later either (htmx's ws-send would).
    page.get_by_role("button", name="Regenerate").click()
    link.come_back()
    expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "online", timeout=15_000
    )
    page.wait_for_timeout(2_000)
    expect(user_messages(page)).to_have_count(1)
    assert len(model.requests) == 1, "nothing was replayed"
    expect(field(page)).to_have_value("written offline")
    expect(note).to_have_text("")
    field(page).press("Enter")
    expect(user_messages(page)).to_have_text(["hello", "written offline"])
    settled(page, model, replies=2)


def test_a_send_whose_answer_was_lost_comes_back_and_resending_it_is_one_message(
    slow_page: Page, link: SlowLink, model: FakeOpenAI
):
    page = slow_page
    model.queue(Reply("Only one of these."))
    with link.holding_answers():
        field(page).fill("did this arrive?")
        field(page).press("Enter")
        expect(field(page)).to_have_value("")
        page.wait_for_timeout(1_000)  # the server has it; its answer is held
        link.go_down()
    expect(field(page)).to_have_value("did this arrive?")
    expect(page.locator("#composer-note")).to_contain_text("it will not appear twice")
    link.come_back()
    expect(send_button(page)).to_be_enabled(timeout=15_000)
    # The catch-up shows it was saved; sending it again, with the same id, saves nothing new.
    expect(user_messages(page)).to_have_text(["did this arrive?"])
    field(page).press("Enter")
    expect(field(page)).to_have_value("")
    settled(page, model, replies=1)
    expect(user_messages(page)).to_have_count(1)


def test_an_over_long_paste_is_kept_whole_and_refused_with_the_limit(
    page: Page, new_room: Callable[..., str]
):
    # A refusal in the page itself: no need for the slow link.
    new_room("Long paste")
    text = "가" * 9_000
    field(page).fill(text)
    expect(field(page)).to_have_value(text)
    note = page.locator("#composer-note")
    expect(note).to_have_text(
        "Too long to send: 9,000 characters, and a message may have at most 8,000."
    )
    expect(send_button(page)).to_be_disabled()
    field(page).press("Enter")
    page.wait_for_timeout(500)
    expect(user_messages(page)).to_have_count(0)
    field(page).fill(text[:8_000])
    expect(note).to_have_text("")
    expect(send_button(page)).to_be_enabled()
