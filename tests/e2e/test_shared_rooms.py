"""Two people in one room, each in their own browser: who is here, who is typing,
the AI's queue, addressed mode, the live room list, and a room deleted under them."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, StorageState, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bob(browser: Browser, app_server: DaphneServer) -> StorageState:
    return sign_up(browser, app_server, "bob")


@pytest.fixture
def bob_context(new_context: Callable[..., BrowserContext], bob: StorageState) -> BrowserContext:
    return new_context(storage_state=bob)


@pytest.fixture
def shared_room(page: Page, new_room: Callable[..., str]) -> Callable[..., str]:
    """A room of alice's, shared with bob through the edit page; alice is left in it."""

    def create(name: str, *, ai_answers: str = "") -> str:
        path = new_room(name)
        page.get_by_role("link", name="Edit and share").click()
        page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
        members = page.locator("#members")
        members.get_by_label("Username").fill("bob")
        members.get_by_role("button", name="Share").click()
        expect(members.locator(".members__name")).to_have_text(["bob"])
        if ai_answers:
            page.get_by_label(ai_answers).check()
            page.get_by_role("button", name="Save").click()
            page.wait_for_url(f"**{path}")
        page.goto(path)
        expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
        return path

    return create


def top_two(cards: Locator, first: str, second: str) -> None:
    # Earlier tests' rooms follow below.
    expect(cards.nth(0)).to_have_text(first)
    expect(cards.nth(1)).to_have_text(second)
    expect(cards.filter(has_text=first)).to_have_count(1)


def presence(page: Page):
    return page.locator("#presence .presence__name")


def test_each_sees_who_is_here_and_who_is_typing(
    page: Page, bob_context: BrowserContext, shared_room: Callable[..., str]
):
    path = shared_room("Trip planning")
    expect(presence(page)).to_have_text(["alice"])
    bob_page = open_tab(bob_context, path)
    expect(presence(page)).to_have_text(["alice", "bob"])
    expect(presence(bob_page)).to_have_text(["alice", "bob"])

    composer = bob_page.get_by_label("Message", exact=True)
    composer.press_sequentially("Shall we go to Busan")
    notice = page.locator("#typing .typing-notice")
    expect(notice).to_have_text("bob is typing…")
    expect(bob_page.locator("#typing .typing-notice")).to_have_count(0)
    # The notice goes when the message arrives.
    composer.press("Enter")
    expect(page.locator("#messages .message--user").last).to_contain_text("Shall we go to Busan")
    expect(notice).to_have_count(0)

    # A pause in typing: the notice goes by itself after about five seconds.
    # (Past the server's throttle, so this typing is news again.)
    page.wait_for_timeout(2_500)
    composer.press_sequentially("or Jeju")
    expect(notice).to_have_count(1)
    expect(notice).to_have_count(0, timeout=8_000)

    bob_page.close()
    expect(presence(page)).to_have_text(["alice"])


def test_a_question_sent_while_the_ai_writes_waits_its_turn(
    page: Page, bob_context: BrowserContext, shared_room: Callable[..., str], model: FakeOpenAI
):
    path = shared_room("Tax questions")
    bob_page = open_tab(bob_context, path)
    model.queue(
        Reply(" ".join(f"word{i}" for i in range(60)), tokens_per_second=20),
        Reply("Answered right after."),
    )
    send(page, "Alice asks first")
    expect(last_reply(bob_page)).to_have_attribute("data-status", "streaming")

    # Bob is never refused: his question is saved and shown queued in both browsers.
    send(bob_page, "Bob asks next")
    for tab in (page, bob_page):
        item = tab.locator("#queue .queue__item")
        expect(item).to_contain_text("Queued · 1")
        expect(item).to_contain_text("Bob asks next")
    # Only its author may cancel it.
    expect(bob_page.locator("#queue").get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.locator("#queue").get_by_role("button", name="Cancel")).to_be_hidden()
    expect(bob_page.get_by_label("Message", exact=True)).to_have_value("")

    for tab in (page, bob_page):
        expect(tab.locator("#queue .queue__item")).to_have_count(0, timeout=15_000)
        users = tab.locator("#messages .message--user .message__body")
        expect(users).to_have_text(["Alice asks first", "Bob asks next"])
        expect(last_reply(tab)).to_have_attribute("data-status", "complete")
        expect(last_reply(tab).locator(".message__body")).to_have_text("Answered right after.")


def test_in_addressed_mode_only_at_ai_gets_a_reply(
    page: Page, bob_context: BrowserContext, shared_room: Callable[..., str], model: FakeOpenAI
):
    path = shared_room("Lunch", ai_answers="Only messages starting with @ai or !")
    bob_page = open_tab(bob_context, path)
    send(page, "Lunch at noon?")
    send(bob_page, "Sure, where?")
    expect(page.locator("#messages .message--user")).to_have_count(2)
    model.queue(Reply("Try the noodle place on the corner."))
    send(bob_page, "@ai any ideas near the office?")
    expect(last_reply(page).locator(".message__body")).to_have_text(
        "Try the noodle place on the corner."
    )
    expect(page.locator("#messages .message--assistant")).to_have_count(1)
    (request,) = model.requests
    assert [t["content"] for t in request["messages"] if t["role"] == "user"] == [
        '[author: "alice"]\nLunch at noon?',
        '[author: "bob"]\nSure, where?',
        '[author: "bob"]\nany ideas near the office?',
    ]


def test_the_room_list_updates_itself(
    page: Page, bob_context: BrowserContext, shared_room: Callable[..., str], model: FakeOpenAI
):
    path = shared_room("Live list")
    shared_room("Newer room")
    bob_list = bob_context.new_page()
    bob_list.goto("/chat/")
    cards = bob_list.locator("#room-list .room-card__name")
    top_two(cards, "Newer room", "Live list")

    page.goto(path)
    model.queue(Reply(" ".join(["slowly"] * 30), tokens_per_second=15))
    send(page, "News for bob")
    # The room goes to the top of bob's list, once.
    top_two(cards, "Live list", "Newer room")
    card = bob_list.locator("#room-list li").first
    expect(card.locator(".room-card__replying")).to_have_text("Replying…")
    expect(card.locator(".room-card__replying")).to_have_count(0, timeout=10_000)
    expect(card.locator(".room-card__unread")).to_have_text("2 unread")
    top_two(cards, "Live list", "Newer room")
    # Opening the room reads it.
    bob_list.goto(path)
    bob_list.goto("/chat/")
    expect(bob_list.locator(".room-card__unread")).to_have_count(0)


def test_deleting_a_room_closes_the_other_persons_tab(
    page: Page, bob_context: BrowserContext, shared_room: Callable[..., str]
):
    path = shared_room("Short-lived")
    bob_page = open_tab(bob_context, path)
    bob_list = bob_context.new_page()
    bob_list.goto("/chat/")
    expect(bob_list.locator(".room-card__name", has_text="Short-lived")).to_have_count(1)

    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    page.get_by_role("link", name="Delete room…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete room")
    page.get_by_role("button", name="Delete for everyone").click()
    page.wait_for_url("**/chat/")
    expect(page.locator(".room-card__name", has_text="Short-lived")).to_have_count(0)

    state = bob_page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "gone")
    expect(state).to_have_text("This room no longer exists")
    expect(bob_list.locator(".room-card__name", has_text="Short-lived")).to_have_count(0)
    response = bob_page.reload()
    assert response is not None and response.status == 404
