"""Destructive changes are guarded and said: a prompt change that clears the room asks
first and tells every open tab, Leave asks and says where you are, a tab whose room
is gone offers the way back; and the room's header folds into a menu on a phone."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import last_reply, open_tab, report_csp_violations, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

PHONE = {"width": 390, "height": 844}


def answered(page: Page, model: FakeOpenAI, text: str) -> None:
    model.queue(Reply(f"Answer to {text}"))
    send(page, text)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def test_a_prompt_change_asks_first_then_every_tab_is_told(
    context: BrowserContext, page: Page, new_room: Callable[..., str], model: FakeOpenAI
):
    path = new_room("Taxes", "Answer briefly.")
    answered(page, model, "First question")
    other = open_tab(context, path)
    expect(other.locator("#messages article")).to_have_count(2)

    # A new name alone saves at once.
    page.goto(f"{path}edit/")
    page.get_by_label("Name", exact=True).fill("Taxes 2025")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    expect(page.locator("#messages article")).to_have_count(2)

    page.goto(f"{path}edit/")
    page.get_by_label("System prompt").fill("Answer in Korean.")
    page.get_by_role("button", name="Save").click()
    confirm = page.get_by_role("alert")
    expect(confirm).to_contain_text("Saving deletes this room's 2 messages, for everyone in it.")
    # Nothing is saved yet, and the edit is kept in the form.
    expect(page.get_by_label("System prompt")).to_have_value("Answer in Korean.")
    expect(other.locator("#messages article")).to_have_count(2)
    expect(other.locator(".room-header__prompt")).to_have_text("Answer briefly.")

    page.get_by_role("button", name="Delete 2 messages and save").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    expect(page.get_by_role("status").filter(has_text="2 messages were deleted")).to_be_visible()
    expect(page.locator("#messages article")).to_have_count(0)
    # The other tab is told, not only emptied.
    expect(other.locator("#messages article")).to_have_count(0)
    expect(other.locator("#messages .room-notice")).to_have_text(
        "The owner changed the system prompt: the earlier messages were deleted for everyone, "
        "and the conversation starts again."
    )
    expect(other.locator(".room-header__prompt")).to_have_text("Answer in Korean.")
    # The notice stays above the new conversation.
    answered(other, model, "Again")
    expect(other.locator("#messages .room-notice")).to_be_visible()


def test_leave_asks_and_then_says_where_you_are(
    new_context: Callable[..., BrowserContext], browser: Browser, app_server: DaphneServer
):
    bob = new_context(storage_state=sign_up(browser, app_server, "bob-leave")).new_page()
    bob.goto("/chat/new/")
    bob.get_by_label("Name").fill("Bob's plans")
    bob.get_by_role("button", name="Create room").click()
    bob.wait_for_url(re.compile(r"/chat/\d+/$"))
    path = bob.url.removeprefix(app_server.http_url)
    bob.get_by_role("link", name="Edit and share").click()
    bob.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    bob.locator("#members").get_by_label("Username").fill("alice")
    bob.locator("#members").get_by_role("button", name="Share").click()
    expect(bob.locator("#members .members__name")).to_have_text(["alice"])

    alice = new_context().new_page()
    alice.goto(path)
    alice.get_by_role("link", name="Leave room…").click()
    expect(alice.get_by_role("heading", name="Leave room")).to_be_visible()
    expect(alice.locator("main")).to_contain_text("Leave “Bob's plans”?")
    # Cancel goes back, still a member.
    alice.get_by_role("link", name="Cancel").click()
    expect(alice.locator("#connection-state")).to_have_attribute("data-state", "online")

    alice.get_by_role("link", name="Leave room…").click()
    alice.get_by_role("button", name="Leave room").click()
    alice.wait_for_url(re.compile(r"/chat/$"))
    expect(alice.get_by_role("status")).to_have_text(
        "You left “Bob's plans”. These are the rooms you are in."
    )
    expect(alice.locator("#room-list")).not_to_contain_text("Bob's plans")


def test_a_tab_whose_room_was_deleted_offers_the_way_back(
    context: BrowserContext, page: Page, new_room: Callable[..., str]
):
    path = new_room("Short-lived")
    gone = open_tab(context, path)
    page.goto(f"{path}delete/")
    page.get_by_role("button", name="Delete for everyone").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.get_by_role("status")).to_have_text("“Short-lived” was deleted for everyone.")

    expect(gone.locator("#connection-state")).to_have_attribute("data-state", "gone")
    notice = gone.get_by_role("alert")
    expect(notice).to_contain_text("This room was deleted, or you are no longer in it.")
    for name in ["Export (Markdown)", "Export (JSON)", "Edit and share"]:
        link = gone.locator(".room-link", has_text=name)
        expect(link).to_have_attribute("aria-disabled", "true")
        expect(link).not_to_have_attribute("href", re.compile(".*"))
    expect(gone.locator("#composer textarea")).to_be_disabled()
    notice.get_by_role("link", name="Back to your rooms").click()
    gone.wait_for_url(re.compile(r"/chat/$"))


def test_on_a_phone_the_header_folds_into_a_menu_and_the_messages_get_the_height(
    new_context: Callable[..., BrowserContext], new_room: Callable[..., str], model: FakeOpenAI
):
    path = new_room(
        "연말정산 준비물과 카드 공제 기준에 대한 긴 이름의 방",
        "You answer Korean tax questions, citing the law. " * 6,
    )
    korean = {"Accept-Language": "ko"}
    phone = new_context(viewport=PHONE, locale="ko-KR", extra_http_headers=korean)
    violations: list[str] = []
    report_csp_violations(phone, violations)
    page = phone.new_page()
    page.goto(path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")

    toggle = page.get_by_role("button", name="방 메뉴")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="내보내기 (Markdown)")).to_be_hidden()
    expect(page.locator(".room-header__prompt")).to_be_hidden()
    messages = page.locator("#messages").bounding_box()
    assert messages and messages["height"] >= 0.7 * PHONE["height"], messages
    header = page.locator(".room-header").bounding_box()
    assert header and header["height"] <= 60, header

    # By keyboard: open, reach a link, close with Esc back on the button.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    export = page.get_by_role("link", name="내보내기 (Markdown)")
    expect(export).to_be_visible()
    expect(page.locator(".room-header__prompt")).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#room-menu') !== null")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    expect(export).to_be_hidden()

    # Still most of the screen with a conversation in it.
    model.queue(Reply("근로소득 원천징수영수증이 필요합니다."))
    page.locator("#composer textarea").fill("연말정산에 무엇이 필요한가요?")
    page.locator("#composer textarea").press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    messages = page.locator("#messages").bounding_box()
    assert messages and messages["height"] >= 0.7 * PHONE["height"], messages
    page.screenshot(path="/tmp/phone-room.png")
    assert violations == []
