"""Rooms between two people, each in their own browser: refused, then shared."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, StorageState, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import last_reply, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# Opens the room's websocket from the page; resolves to its close code and how many frames came.
TRY_SOCKET = """path => new Promise(resolve => {
    const socket = new WebSocket(`ws://${location.host}/ws${path}`);
    let received = 0;
    socket.onmessage = () => { received += 1; };
    socket.onclose = event => resolve({ code: event.code, received });
})"""


@pytest.fixture(scope="module")
def bob(browser: Browser, app_server: DaphneServer) -> StorageState:
    """A second person, signed up through the page."""
    return sign_up(browser, app_server, "bob")


@pytest.fixture
def bob_page(new_context: Callable[..., BrowserContext], bob: StorageState) -> Page:
    return new_context(storage_state=bob).new_page()


def last_user_message(page: Page) -> Locator:
    return page.locator("#messages .message--user").last


def test_someone_else_gets_a_404_and_no_room(
    page: Page, bob_page: Page, new_room: Callable[..., str]
):
    path = new_room("Alice's diary", "Keep my secrets.")
    send(page, "Dear diary")
    expect(last_user_message(page)).to_contain_text("Dear diary")

    response = bob_page.goto(path)
    assert response is not None and response.status == 404
    expect(bob_page.locator("body")).to_contain_text(re.compile("not found", re.I))
    expect(bob_page.locator("body")).not_to_contain_text("Alice's diary")
    expect(bob_page.locator("body")).not_to_contain_text("Dear diary")
    # Its websocket is refused (accepted, then closed with 4404, so the page can
    # say why) with nothing of the room sent, and the room is not in bob's list.
    assert bob_page.evaluate(TRY_SOCKET, path) == {"code": 4404, "received": 0}
    bob_page.goto("/chat/")
    expect(bob_page.get_by_role("heading", level=1)).to_have_text("Rooms")
    expect(bob_page.locator(".room-card", has_text="Alice's diary")).to_have_count(0)
    # Nor can bob reach its edit page.
    response = bob_page.goto(f"{path}edit/")
    assert response is not None and response.status == 404


def test_owner_shares_the_room_and_both_chat_in_it_live(
    page: Page, bob_page: Page, new_room: Callable[..., str], model: FakeOpenAI
):
    path = new_room("Trip planning", "Plan short trips.")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    expect(page).to_have_url(re.compile(r"/chat/\d+/edit/$"))
    # The members form swaps itself with HTMX: a full page load would drop this marker.
    page.evaluate("window.samePage = true")
    members = page.locator("#members")
    expect(members.get_by_role("heading", name="Members")).to_be_visible()
    expect(members.locator(".members__list")).to_have_text("Only you, for now.")

    members.get_by_label("Username").fill("nobody")
    members.get_by_role("button", name="Share").click()
    expect(members.locator(".error")).to_have_text("There is no user called “nobody”.")
    members.get_by_label("Username").fill("bob")
    members.get_by_role("button", name="Share").click()
    expect(members.locator(".members__name")).to_have_text(["bob"])
    expect(members.get_by_role("button", name="Remove bob")).to_be_visible()
    expect(members.get_by_label("Username")).to_have_value("")
    assert page.evaluate("window.samePage") is True

    # Bob finds the room in his list and opens it.
    bob_page.goto("/chat/")
    bob_page.locator(".room-card", has_text="Trip planning").click()
    expect(bob_page.get_by_role("heading", level=1)).to_have_text("Trip planning")
    expect(bob_page.locator("#connection-state")).to_have_attribute("data-state", "online")
    # Only the owner edits and shares.
    expect(bob_page.get_by_role("link", name="Edit and share")).to_have_count(0)

    page.goto(path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    answer = "Jeju in May: two days on the east coast, then Hallasan."
    model.queue(Reply(answer, tokens_per_second=15))
    send(page, "Where shall we go?")
    # Bob watches alice's message and the reply arrive, with alice's name on it.
    expect(last_user_message(bob_page).locator(".message__author")).to_have_text("alice")
    expect(last_user_message(bob_page).locator(".message__body")).to_have_text("Where shall we go?")
    expect(last_reply(bob_page)).to_have_attribute("data-status", "complete")
    expect(last_reply(bob_page).locator(".message__body")).to_have_text(answer)

    # And the other way round.
    model.queue(Reply("Book the ferry a month ahead."))
    send(bob_page, "When should we book?")
    expect(last_user_message(page).locator(".message__author")).to_have_text("bob")
    expect(last_user_message(page).locator(".message__body")).to_have_text("When should we book?")
    expect(last_reply(page).locator(".message__body")).to_have_text("Book the ferry a month ahead.")


def test_a_removed_member_is_shown_the_door_at_once(
    page: Page, bob_page: Page, new_room: Callable[..., str]
):
    path = new_room("Short-lived club")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    members = page.locator("#members")
    members.get_by_label("Username").fill("bob")
    members.get_by_role("button", name="Share").click()
    expect(members.locator(".members__name")).to_have_text(["bob"])
    bob_page.goto(path)
    state = bob_page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "online")

    members.get_by_role("button", name="Remove bob").click()
    expect(members.locator(".members__list")).to_have_text("Only you, for now.")
    # Bob's open tab is closed by the server and says why; it does not retry.
    expect(state).to_have_attribute("data-state", "removed")
    expect(state).to_have_text("You are no longer a member of this room")
    expect(bob_page.get_by_role("button", name="Send")).to_be_disabled()
    response = bob_page.reload()
    assert response is not None and response.status == 404
