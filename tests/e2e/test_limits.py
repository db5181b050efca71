"""Spend limits in a real browser: a reply cut at the ceiling, and the divider where
the model's memory begins, the same live as after a reload."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import last_reply, send
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.integration

# Replies of at most 6 tokens (the tests' server counts a word as one), and a
# window that holds a few exchanges.
SERVER_ENV = {"CHAT_MAX_REPLY_TOKENS": "6", "CHAT_CONTEXT_TOKENS": "150"}
LENGTH_NOTE = "This reply reached the length limit: Continue carries it on."

# The id of the message after the one divider, or how many dividers there are.
DIVIDER_BEFORE = """() => {
    const dividers = document.querySelectorAll("#messages .context-divider");
    return dividers.length === 1 ? dividers[0].nextElementSibling.id : dividers.length;
}"""


def test_a_cut_reply_and_the_memory_divider_show_live_as_after_a_reload(
    page: Page, new_room: Callable[..., str], model: FakeOpenAI
):
    new_room("Small window")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    assert page.evaluate(DIVIDER_BEFORE) == 0, "a new room sends everything"
    for n in range(6):
        send(page, f"question {n}: alpha beta gamma delta epsilon zeta eta theta")
        expect(page.locator("#messages .message--assistant")).to_have_count(n + 1)
        expect(last_reply(page)).to_have_attribute("data-status", "complete")

    reply = last_reply(page)
    expect(reply.locator(".message__note")).to_have_text(LENGTH_NOTE)
    expect(reply.get_by_role("button", name="Continue")).to_be_visible()
    live = page.evaluate(DIVIDER_BEFORE)
    start = page.locator("#context-start").get_attribute("data-message")
    assert start and live == f"message-{start}", (live, start)
    expect(page.locator(".context-divider")).to_have_text("Earlier messages are not sent to the AI")

    page.reload()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    assert page.evaluate(DIVIDER_BEFORE) == live
    expect(last_reply(page).locator(".message__note")).to_have_text(LENGTH_NOTE)
