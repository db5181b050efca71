"""A reply's deltas, applied as a page applies them, merged or not, show the reply as it
was at each seq (chat.deltas, tests/wsutil.Page as static/chat/chat.js)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chat import deltas, mdblocks
from tests.test_mdblocks import chunked
from tests.wsutil import Page

ARTICLE = (
    '<article id="message-1" class="message message--assistant" data-pk="1" data-blocks="0"'
    ' data-seq="0" data-status="streaming"><div class="message__body">'
    '<div class="message__tail"></div><span class="typing"></span></div></article>'
)


def shown(page: Page) -> str:
    finished, _count, tail = page._parts[1]
    return finished + (tail or "")


def stream(text: str, cuts: list[int], wholes: list[bool]) -> list[tuple[str, str]]:
    """Each delta of `text` sent in pieces, with the reply's HTML at its seq."""
    reply, sent = deltas.DeltaStream(message_id=1), []
    for seq, (cut, whole) in enumerate(zip(cuts, wholes, strict=False), start=1):
        if whole:
            reply.whole_next()
        found = reply.next(text=text[:cut], seq=seq)
        if found is None:
            break
        parts = mdblocks.split(text[:cut])
        sent.append((found, "".join(parts.new) + parts.tail))
    return sent


@settings(max_examples=300, deadline=None)
@given(chunked(), st.lists(st.booleans(), min_size=13, max_size=13), st.data())
def test_deltas_merged_or_not_show_the_reply_as_it_was(case, wholes, data):
    text, cuts = case
    sent = stream(text, cuts, wholes)
    page = Page()
    page.feed(ARTICLE)
    for frame, html in sent:
        assert page.feed(frame)
        assert shown(page) == html
    # A slow tab: runs of deltas merged while they waited (chat.layers, chat.outbox).
    page, at = Page(), 0
    page.feed(ARTICLE)
    while at < len(sent):
        run = data.draw(st.integers(1, len(sent) - at))
        frame = sent[at][0]
        for newer, _html in sent[at + 1 : at + run]:
            frame = deltas.merge(frame, newer)
        at += run
        assert page.feed(frame)
        assert shown(page) == sent[at - 1][1]


def test_a_delta_that_does_not_follow_is_not_applied_and_the_page_asks():
    text = "first paragraph\n\nsecond one goes on"
    sent = stream(text, [5, 20, 28, len(text)], [False] * 4)
    page = Page()
    page.feed(ARTICLE)
    assert page.feed(sent[0][0])
    assert not page.feed(sent[2][0])  # the second never came
    assert shown(page) == sent[0][1]
    assert page.asks == ['{"action": "sync", "message": 1, "seq": 1}']


@settings(max_examples=300, deadline=None)
@given(chunked(), st.lists(st.booleans(), min_size=13, max_size=13))
def test_a_page_that_missed_deltas_asks_and_the_next_delta_takes_it_up(case, lost):
    """Whatever it missed, blocks included, the delta after its ask brings the page
    to the reply as it was then: the ask carries the seq it holds."""
    text, cuts = case
    reply, page = deltas.DeltaStream(message_id=1), Page()
    page.feed(ARTICLE)
    for seq, (cut, missed) in enumerate(zip(cuts, lost, strict=False), start=1):
        asked = bool(page.asks)
        if asked:
            reply.whole_next(seq=json.loads(page.asks.pop())["seq"])
        found = reply.next(text=text[:cut], seq=seq)
        if found is None:
            return
        if missed:
            continue
        parts = mdblocks.split(text[:cut])
        applied = bool(page.feed(found))
        assert applied or not asked
        if applied:
            assert shown(page) == "".join(parts.new) + parts.tail
        else:
            # It keeps an older, consistent text, and asks again once its wait is over.
            page.asks.clear()
            page.ask(1, now=1e6 * seq)
            assert page.asks


def test_a_whole_delta_takes_up_a_page_that_holds_its_first_blocks():
    text = "one\n\ntwo\n\nthree and more"
    reply = deltas.DeltaStream(message_id=1)
    first = reply.next(text=text[:12], seq=1)  # finishes "one"
    reply.next(text=text[:18], seq=2)  # lost
    reply.whole_next()
    whole = reply.next(text=text, seq=3)
    assert deltas.parse(whole)[0].whole
    page = Page()
    page.feed(ARTICLE)
    assert page.feed(first)
    assert page.feed(whole)
    parts = mdblocks.split(text)
    assert shown(page) == "".join(parts.new) + parts.tail


def test_a_frame_is_a_header_line_then_the_html_as_it_is():
    reply = deltas.DeltaStream(message_id=7)
    assert reply.next(text='say "hi"', seq=1) == '[7,1,0,0,[],0,0]\n<p>say "hi"</p>\n'
    assert reply.next(text='say "hi" there', seq=2) == "[7,2,11,5]\n there"
