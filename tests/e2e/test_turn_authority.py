"""Settings and authority at the moment of the action, in two people's browsers: the
owner switches the room to "only @ai" while both have it open, then removes the member."""

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer

pytestmark = pytest.mark.integration

# Set to a folder to keep the screenshots of each step, to look at them.
SHOTS = os.environ.get("TURN_SCREENSHOTS")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture(scope="module")
def bob(browser: Browser, app_server: DaphneServer) -> StorageState:
    return sign_up(browser, app_server, "bob")


def test_only_at_ai_applies_to_open_tabs_and_a_removed_member_can_no_longer_send(
    page: Page,
    new_context: Callable[..., BrowserContext],
    new_room: Callable[..., str],
    bob: StorageState,
    model_server: FakeOpenAI,
):
    path = new_room("Only when called")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    edit_url = page.url
    page.locator("#members").get_by_label("Username").fill("bob")
    page.locator("#members").get_by_role("button", name="Share").click()
    expect(page.locator("#members .members__name")).to_have_text(["bob"])
    owner_tab = open_tab(page.context, path)
    bob_tab = open_tab(new_context(storage_state=bob), path)

    # The owner switches the room to "only @ai" in another tab of theirs.
    page.goto(edit_url)
    page.get_by_label("Only messages starting with @ai or !").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    for tab in (owner_tab, bob_tab):
        expect(tab.locator("#room-title")).to_contain_text("The AI answers only messages")
    shot(bob_tab, "1-header-switched")

    send(bob_tab, "just between us")
    expect(owner_tab.locator("#messages .message--user")).to_have_count(1)
    bob_tab.wait_for_timeout(1500)
    expect(bob_tab.locator("#messages .message--assistant")).to_have_count(0)
    assert model_server.requests == []

    model_server.queue(Reply("Here I am.", tokens_per_second=30))
    send(bob_tab, "@ai are you there?")
    reply = bob_tab.locator("#messages .message--assistant").last
    expect(reply).to_contain_text("Here I am.")
    expect(reply).to_have_attribute("data-status", "complete")
    shot(bob_tab, "2-called-in")

    # The owner removes bob: his open tab can no longer send.
    page.goto(edit_url)
    page.locator("#members").get_by_role("button", name="Remove").click()
    expect(page.locator("#members .members__name")).to_have_count(0)
    expect(bob_tab.locator("#connection-state")).to_have_attribute("data-state", "removed")
    # The page locks the composer; the server closed the socket (4403) anyway.
    expect(bob_tab.get_by_label("Message", exact=True)).to_be_disabled()
    expect(bob_tab.locator("#composer button[type=submit]")).to_be_disabled()
    owner_tab.wait_for_timeout(1000)
    expect(owner_tab.locator("#messages .message--user")).to_have_count(2)
    shot(bob_tab, "3-removed")
    shot(owner_tab, "4-owner")
