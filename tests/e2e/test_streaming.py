"""A streaming reply grows in place: finished blocks are appended once and stay the same
nodes, only the tail is replaced, and a reader's selection survives the stream."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply

pytestmark = pytest.mark.integration

ANSWER = "\n\n".join(
    [
        "The first paragraph says what the answer is about, in a few plain words.",
        "## A heading",
        "- one item\n- two items\n- three items",
        "```python\ndef total(values):\n    return sum(values)\n```",
        *(f"Paragraph {i} goes on for a while, so the reply streams for long." for i in range(8)),
        "퇴직금은 근속 기간에 따라 계산됩니다.",
    ]
)

# Run in the page: the reply's article and its first block, and a selection of
# that block's text, remembered so later checks compare nodes, not text.
HOLD = """() => {
  const article = [...document.querySelectorAll('#messages .message--assistant')].pop();
  const first = article.querySelector('.message__body > p');
  const range = document.createRange();
  range.selectNodeContents(first);
  getSelection().removeAllRanges();
  getSelection().addRange(range);
  window.held = { article, first, blocks: [...article.querySelector('.message__body').children] };
  return first.textContent;
}"""
STILL_HELD = """() => {
  const article = [...document.querySelectorAll('#messages .message--assistant')].pop();
  const body = article.querySelector('.message__body');
  return {
    streaming: article.dataset.status === 'streaming',
    same: article === window.held.article && window.held.first.isConnected,
    blocks: window.held.blocks.filter((n) => !n.classList.contains('message__tail'))
      .every((n) => n.parentNode === body),
    selected: getSelection().toString(),
  };
}"""


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    return new_room("Streaming room")


def test_the_article_and_its_blocks_stay_put_and_a_selection_survives(
    page: Page, room: str, model: FakeOpenAI
):
    model.queue(Reply(ANSWER, tokens_per_second=40))
    send(page, "A long answer, please")
    reply = last_reply(page)
    # The first paragraph is finished once the heading's line is complete.
    expect(reply.locator(".message__body > h2")).to_have_count(1, timeout=10_000)
    assert reply.get_attribute("data-status") == "streaming"
    selected = page.evaluate(HOLD)
    assert selected.startswith("The first paragraph")
    samples = 0
    while (state := page.evaluate(STILL_HELD))["streaming"]:
        assert state["same"] and state["blocks"], state
        assert state["selected"] == selected, state
        samples += 1
        page.wait_for_timeout(100)
    assert samples > 10
    # The final state replaces the article once, as a page load renders it.
    expect(reply).to_have_attribute("data-status", "complete")
    final_html = reply.evaluate("a => a.outerHTML")
    page.reload()
    assert last_reply(page).evaluate("a => a.outerHTML") == final_html


def test_two_tabs_end_the_same_as_a_reload(page: Page, room: str, model: FakeOpenAI):
    other = open_tab(page.context, page.url)
    model.queue(Reply(ANSWER, tokens_per_second=80))
    send(page, "Once more")
    for tab in (page, other):
        expect(last_reply(tab)).to_have_attribute("data-status", "complete", timeout=20_000)
    shown = [last_reply(tab).evaluate("a => a.outerHTML") for tab in (page, other)]
    other.reload()
    assert shown == [last_reply(other).evaluate("a => a.outerHTML")] * 2
    expect(last_reply(other).locator(".message__body pre")).to_have_count(1)


# Run in the page before the reply: every line the live region is given, in order.
HEAR = """() => {
  window.heard = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) window.heard.push(node.textContent);
    }
  }).observe(document.getElementById('announcer'), { childList: true });
}"""


def test_a_screen_reader_hears_each_finished_block_once(page: Page, room: str, model: FakeOpenAI):
    page.evaluate(HEAR)
    model.queue(Reply(ANSWER, tokens_per_second=80))
    send(page, "Read it to me")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    heard = page.evaluate("window.heard")
    # The question arrives whole, and is read once; the reply, block by block.
    assert sum("Read it to me" in line for line in heard) == 1, heard
    for block in ("The first paragraph says", "A heading", "three items", "return sum(values)"):
        assert sum(block in line for line in heard) == 1, (block, heard)
    for i in range(8):
        assert sum(f"Paragraph {i} goes on" in line for line in heard) == 1, (i, heard)
    # The last block, which the tail held until the end, is read with the final state.
    assert sum("퇴직금은 근속 기간에 따라" in line for line in heard) == 1, heard
    # Never the whole article at once.
    assert not any("The first paragraph" in line and "Paragraph 7" in line for line in heard)
