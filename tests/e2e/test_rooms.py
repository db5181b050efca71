"""Rooms in a real browser: the room list and the HTMX creation form."""

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.integration


def test_invalid_room_shows_the_error_inline_without_a_reload(page: Page):
    page.goto("/chat/new/")
    # A full page load would drop this marker; an HTMX swap keeps it.
    page.evaluate("window.samePage = true")
    page.get_by_label("System prompt").fill("Answer briefly.")
    page.get_by_role("button", name="Create room").click()

    error = page.locator("#id_name_error")
    expect(error).to_have_text("This field is required.")
    assert page.evaluate("window.samePage") is True
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
    # What was typed survives the swap, and the form still works.
    expect(page.get_by_label("System prompt")).to_have_value("Answer briefly.")
    page.get_by_label("Name").fill("Tax questions")
    page.get_by_role("button", name="Create room").click()

    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Tax questions")
    expect(page.locator(".room-header__prompt")).to_have_text("Answer briefly.")


def test_room_list_shows_rooms_with_their_latest_activity(page: Page, new_room):
    new_room("Quiet room")
    new_room("Newest room", "Be kind.")
    page.goto("/chat/")
    cards = page.locator(".room-card")
    expect(cards.first.locator(".room-card__name")).to_have_text("Newest room")
    expect(cards.first).to_contain_text("Be kind.")
    expect(cards.first).to_contain_text("0 messages")
    cards.first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Newest room")
