"""Invite links, reactions and feedback in real browsers: someone signed out follows a
link through sign-up into the room, and a reaction shows live in another person's tab."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import PASSWORD
from tests.e2e.pages import last_reply, open_tab, report_csp_violations, send
from tests.fakeopenai import FakeOpenAI, Reply

pytestmark = pytest.mark.integration


# Run in each page before its scripts: its websockets, kept where a test can close them.
KEEP_SOCKETS = """
window.sockets = [];
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const socket = new Native(...args);
  window.sockets.push(socket);
  return socket;
};
Object.assign(window.WebSocket, Native);
window.WebSocket.prototype = Native.prototype;
"""


def invite_link(page: Page, path: str) -> str:
    """Create a link in the room's Edit and share, as its owner; returns it."""
    page.goto(f"{path}edit/")
    invites = page.locator("#invites")
    invites.get_by_role("button", name="Create link").click()
    url = invites.get_by_label("Invite link")
    expect(url).to_have_count(1)
    return url.input_value()


def test_signed_out_a_link_leads_through_sign_up_into_the_room(
    page: Page,
    new_context: Callable[..., BrowserContext],
    new_room: Callable[..., str],
    violations: list[str],
):
    path = new_room("Invited in")
    link = invite_link(page, path)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/chat/invite/[\w-]+:[\w-]+/", link), link

    guest = new_context(storage_state=None)
    report_csp_violations(guest, violations)
    tab = guest.new_page()
    tab.goto(link)
    expect(tab.locator("body")).to_contain_text("You are invited to the room “Invited in”")
    tab.get_by_role("link", name="Sign up").click()
    tab.get_by_label("Username").fill("carol")
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.get_by_label("Password confirmation").fill(PASSWORD)
    tab.get_by_role("button", name="Create account").click()
    tab.wait_for_url(f"**{path}")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Invited in")
    expect(tab.locator("#connection-state")).to_have_attribute("data-state", "online")

    # The owner sees the use, then revokes the link: nobody else gets in with it.
    page.reload()
    expect(page.locator("#invites .invite")).to_contain_text("used 1 time")
    page.locator("#invites").get_by_role("button", name="Revoke").click()
    expect(page.locator("#invites")).to_contain_text("No active links.")
    stranger = new_context(storage_state=None).new_page()
    response = stranger.goto(link)
    assert response is not None and response.status == 410
    expect(stranger.locator("body")).to_contain_text("revoked by the room's owner")


def test_a_reaction_shows_live_in_another_person_s_tab_and_a_reply_takes_feedback(
    page: Page,
    new_context: Callable[..., BrowserContext],
    new_room: Callable[..., str],
    model: FakeOpenAI,
    violations: list[str],
):
    page.context.add_init_script(KEEP_SOCKETS)
    path = new_room("Reacting")
    link = invite_link(page, path)
    page.goto(path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    model.queue(Reply("Here is an answer."))
    send(page, "React to this")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    # dave signs up through the link; his browser is another person's.
    dave = new_context(storage_state=None)
    report_csp_violations(dave, violations)
    signup = dave.new_page()
    signup.goto(link)
    signup.get_by_role("link", name="Sign up").click()
    signup.get_by_label("Username").fill("dave")
    signup.get_by_label("Password", exact=True).fill(PASSWORD)
    signup.get_by_label("Password confirmation").fill(PASSWORD)
    signup.get_by_role("button", name="Create account").click()
    signup.wait_for_url(f"**{path}")
    dave_page = open_tab(dave, path)

    question = dave_page.locator("#messages .message--user").last
    reactions = question.locator("xpath=following-sibling::div[1]").locator(".reactions")
    reactions.locator("summary").click()
    reactions.get_by_role("button", name="👍").click()

    on_alice = page.locator("#messages .message__extras").first.locator(".reactions__chip")
    expect(on_alice).to_have_count(1)
    expect(on_alice).to_have_attribute("title", "dave")
    expect(on_alice).to_have_attribute("aria-label", "👍 from dave")
    expect(on_alice).to_have_attribute("aria-pressed", "false")
    on_dave = reactions.locator(".reactions__chip")
    expect(on_dave).to_have_attribute("aria-pressed", "true")

    # The same again takes it back, in every tab.
    on_dave.click()
    expect(on_alice).to_have_count(0)
    expect(on_dave).to_have_count(0)

    # A reaction made while alice's socket is down reaches her page when it reconnects.
    page.evaluate("window.sockets.at(-1).close()")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "offline")
    reactions.locator("summary").click()
    reactions.get_by_role("button", name="❤️").click()
    expect(on_dave).to_have_count(1)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    expect(on_alice).to_have_attribute("aria-label", "❤️ from dave")

    # The reply's feedback is alice's own.
    feedback = page.locator(f"#feedback-{last_reply(page).get_attribute('data-pk')}")
    feedback.get_by_role("button", name="Not helpful").click()
    expect(feedback.get_by_role("status")).to_have_text("Thank you: your feedback was saved.")
    expect(feedback.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
