"""Rooms people come back to, in Chromium: a mention picked from the composer's list
reaches the other person's hidden tab as a notification, and so does the end of the
AI's answer to them; "New since you left" and Catch me up are the returning reader's
alone."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# Each notification the page makes is kept in window.notes instead of shown.
CAPTURE_NOTIFICATIONS = """
window.notes = [];
const Real = window.Notification;
function Captured(title, options) {
    window.notes.push({ title, body: (options && options.body) || "" });
    this.close = () => {};
}
Object.defineProperty(Captured, "permission", { get: () => Real.permission });
Captured.requestPermission = () => Real.requestPermission();
window.Notification = Captured;
window.hideTab = () => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
};
"""


@pytest.fixture(scope="module")
def bob(browser: Browser, app_server: DaphneServer) -> StorageState:
    return sign_up(browser, app_server, "bob")


@pytest.fixture
def bob_context(new_context: Callable[..., BrowserContext], bob: StorageState) -> BrowserContext:
    context = new_context(storage_state=bob)
    context.grant_permissions(["notifications"])
    context.add_init_script(CAPTURE_NOTIFICATIONS)
    return context


@pytest.fixture
def shared_room(page: Page, new_room: Callable[..., str]) -> Callable[[str], str]:
    """A room of alice's where people talk and call the AI in, shared with bob."""

    def create(name: str) -> str:
        path = new_room(name)
        page.get_by_role("link", name="Edit and share").click()
        page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
        members = page.locator("#members")
        members.get_by_label("Username").fill("bob")
        members.get_by_role("button", name="Share").click()
        expect(members.locator(".members__name")).to_have_text(["bob"])
        page.get_by_label("Only messages starting with @ai or !").check()
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(f"**{path}")
        page.goto(path)
        expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
        return path

    return create


def test_a_mention_and_an_answer_reach_a_hidden_tab_as_notifications(
    page: Page,
    bob_context: BrowserContext,
    shared_room: Callable[[str], str],
    model_server: FakeOpenAI,
):
    path = shared_room("Lunch")
    bob_page = open_tab(bob_context, path)
    toggle = bob_page.locator("#notify-toggle")
    expect(toggle).to_have_text("Notifications: off")
    toggle.click()
    expect(toggle).to_have_text("Notifications: on")
    expect(toggle).to_have_attribute("aria-pressed", "true")

    # Seen while the room is visible: no notification.
    send(page, "@bob are you there?")
    expect(bob_page.locator("#messages .message--user").last).to_contain_text("are you there?")

    bob_page.evaluate("hideTab()")
    # Alice picks bob from the composer's list, by keyboard.
    composer = page.get_by_label("Message", exact=True)
    composer.press_sequentially("lunch at noon, @b")
    options = page.get_by_role("listbox", name="People in this room")
    expect(options.get_by_role("option")).to_have_text(["@bob"])
    expect(composer).to_have_attribute("aria-activedescendant", "mention-option-0")
    expect(options.get_by_role("option", selected=True)).to_have_text("@bob")
    composer.press("Enter")
    expect(options).to_be_hidden()
    expect(composer).to_have_value("lunch at noon, @bob ")
    composer.press("Enter")

    mention = bob_page.locator('#messages .mention[data-mention="bob"]').last
    expect(mention).to_have_text("@bob")
    bob_page.wait_for_function("() => window.notes.length >= 1")
    assert bob_page.evaluate("window.notes") == [
        {"title": "alice mentioned you in Lunch", "body": "lunch at noon, @bob"}
    ]
    expect(bob_page).to_have_title(re.compile(r"^\(1\) Lunch"))
    # Bob's own mentions stand out in his tab; alice's tab shows the same HTML plainly.
    own = "e => getComputedStyle(e).backgroundColor"
    assert mention.evaluate(own) != "rgba(0, 0, 0, 0)"
    assert page.locator('#messages .mention[data-mention="bob"]').last.evaluate(own) == (
        "rgba(0, 0, 0, 0)"
    )

    # Bob's own question notifies nothing; the end of its answer does.
    model_server.queue(Reply("Noon suits me too, and here is why.", tokens_per_second=20))
    send(bob_page, "@ai is noon a good time?")
    bob_page.wait_for_function("() => window.notes.length >= 2")
    notes = bob_page.evaluate("window.notes")
    assert [note["title"] for note in notes] == [
        "alice mentioned you in Lunch",
        "The AI answered your question in Lunch",
    ]


def test_the_divider_and_the_recap_are_the_returning_reader_s_alone(
    page: Page,
    bob_context: BrowserContext,
    shared_room: Callable[[str], str],
    model_server: FakeOpenAI,
):
    path = shared_room("Trip")
    bob_page = open_tab(bob_context, path)
    expect(page.locator("#presence .presence__name")).to_have_count(2)
    bob_page.close()  # bob leaves; his last read is now
    expect(page.locator("#presence .presence__name")).to_have_count(1)
    send(page, "Flights are booked")
    send(page, "Now the hotel")
    expect(page.locator("#messages .message--user")).to_have_count(2)

    bob_page = open_tab(bob_context, path)
    divider = bob_page.locator("#since-divider")
    expect(divider).to_have_text("New since you left")
    first_new = bob_page.locator("#since-divider + article")
    expect(first_new).to_contain_text("Flights are booked")
    expect(page.locator("#since-divider")).to_have_count(0)

    model_server.queue(
        Reply("- **alice** booked the flights [1] and is on the hotel [2].", tokens_per_second=30)
    )
    bob_page.get_by_role("button", name="Catch me up").click()
    recap = bob_page.locator("#recap")
    expect(recap).to_have_attribute("aria-busy", "false")
    expect(recap).to_contain_text("alice booked the flights [1] and is on the hotel [2].")
    expect(recap).to_contain_text("Only you see this recap, and it is not saved.")
    expect(page.locator("#recap")).to_be_hidden()
    expect(page.locator("#messages .message")).to_have_count(2)

    # A link opens its message in place: no reload, the message targeted.
    bob_page.evaluate("window.stayed = true")
    first_id = first_new.get_attribute("id")
    recap.get_by_role("link", name="[1]").click()
    expect(bob_page).to_have_url(re.compile(f"#{first_id}$"))
    assert bob_page.evaluate("window.stayed") is True
    assert bob_page.locator(f"#{first_id}").evaluate("e => e.matches(':target')")
