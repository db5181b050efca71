"""A room's token budget in Chromium: set in *Edit and share* with its errors inline,
then a question over it saved, skipped and explained, and its note kept on reload."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import send
from tests.fakeopenai import FakeOpenAI, Reply

pytestmark = pytest.mark.integration

SERVER_ENV = {"CHAT_MAX_REPLY_TOKENS": "100"}


def budget_saved(page: Page, tokens: str) -> None:
    page.get_by_label("Tokens a month").fill(tokens)
    page.get_by_role("button", name="Set budget").click()


def test_a_room_over_its_budget_skips_the_question_and_says_why(
    page: Page, new_room: Callable[..., str], model: FakeOpenAI
):
    path = new_room("Budgeted")
    page.goto(f"{path}edit/")
    budget_saved(page, "0")
    card = page.locator("#budget")
    expect(card.get_by_role("alert")).to_have_text(
        "A budget is at least 1 token; leave it empty for no budget."
    )
    # Less than any reply's reservation (its prompt and the 100-token ceiling).
    budget_saved(page, "50")
    expect(card.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_label("Tokens a month")).to_have_value("50")

    model.queue(Reply("Never sent."))
    page.goto(path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    send(page, "Is anyone answering?")
    expect(page.locator("#budget-notice [role=alert]")).to_contain_text(
        "The AI cannot answer: this room's monthly token budget has 50 tokens left"
    )
    question = page.locator("#messages .message--user").last
    expect(question).to_contain_text("Is anyone answering?")
    note = "The AI did not answer: this room's monthly token budget ran out."
    expect(question.locator(".message__note--skipped")).to_have_text(note)
    expect(page.locator("#messages .message--assistant")).to_have_count(0)
    assert model.requests == []

    page.reload()
    expect(page.locator("#messages .message--user").last.locator(".message__note")).to_have_text(
        note
    )
    expect(page.locator("#budget-notice")).to_be_empty()
