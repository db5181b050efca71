"""A room in a real browser: live updates, Markdown, the composer's keys, scrolling."""

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply

pytestmark = pytest.mark.integration

SCROLL_STATE = """el => ({
    top: el.scrollTop,
    fromBottom: el.scrollHeight - el.scrollTop - el.clientHeight,
    height: el.scrollHeight,
})"""


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    path = new_room("Live room", "You are a helpful assistant.")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    return path


def test_connection_indicator_says_live(page: Page, room: str):
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "online")
    expect(state).to_have_text("Live")


def test_both_tabs_see_the_message_and_watch_the_reply_grow(
    page: Page, context: BrowserContext, room: str, model: FakeOpenAI
):
    text = " ".join(f"word{i}" for i in range(40))
    model.queue(Reply(text, tokens_per_second=20))
    other = open_tab(context, room)
    # Record every length the other tab's reply shows while it streams.
    other.evaluate(
        """() => {
        window.seenLengths = [];
        setInterval(() => {
            const body = document.querySelector("#messages .message--assistant .message__body");
            if (body) window.seenLengths.push(body.textContent.trim().length);
        }, 25);
    }"""
    )

    send(page, "Tell me forty words")

    for tab in (page, other):
        expect(tab.locator("#messages .message--user .message__body")).to_have_text(
            "Tell me forty words"
        )
        expect(last_reply(tab)).to_have_attribute("data-status", "complete", timeout=10_000)
        expect(last_reply(tab).locator(".message__body")).to_have_text(text)
    growing = {n for n in other.evaluate("window.seenLengths") if 0 < n < len(text)}
    assert len(growing) >= 3, f"the reply should be seen growing, saw lengths {sorted(growing)}"


def test_markdown_reply_is_formatted_and_harmless(page: Page, room: str, model: FakeOpenAI):
    model.queue(
        Reply(
            "Here is a function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
            "- **first** point\n- second point\n\n"
            "<img src=x onerror=\"window.hacked = 'img'\"> "
            "[click me](javascript:window.hacked='link')"
        )
    )
    send(page, "Show me code")

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    code = reply.locator("pre.highlight code")
    expect(code).to_have_text("def add(a, b):\n    return a + b\n")
    expect(code.locator("span.k").first).to_have_text("def")
    expect(code.locator("span.nf")).to_have_text("add")
    expect(reply.locator("ul > li")).to_have_text(["first point", "second point"])
    expect(reply.locator("li strong")).to_have_text("first")
    # The model's HTML is shown as text, and the script link is not a link.
    expect(reply).to_contain_text("<img src=x onerror=")
    expect(reply.locator("img, a[href^='javascript']")).to_have_count(0)
    reply.get_by_text("[click me]", exact=False).click()
    assert page.evaluate("window.hacked") is None


def test_enter_sends_shift_enter_breaks_the_line_and_a_send_mid_reply_waits_its_turn(
    page: Page, room: str, model: FakeOpenAI
):
    model.queue(Reply(" ".join(["slowly"] * 20), tokens_per_second=15), Reply("Second answer."))
    field = page.get_by_label("Message", exact=True)
    button = page.get_by_role("button", name="Send")

    field.click()
    field.type("line one")
    field.press("Shift+Enter")
    field.type("line two")
    expect(field).to_have_value("line one\nline two")
    expect(page.locator("#messages article")).to_have_count(0)

    field.press("Enter")
    expect(page.locator("#messages .message--user .message__body")).to_have_text(
        "line one\nline two", use_inner_text=True
    )
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "true")

    # Enter while the room is replying is not refused: the question waits its turn.
    expect(button).to_be_enabled()
    page.get_by_label("Message", exact=True).type("while it writes")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator("#queue .queue__item")).to_contain_text("while it writes")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")

    expect(page.locator("#queue .queue__item")).to_have_count(0, timeout=10_000)
    expect(page.locator("#messages .message--user")).to_have_count(2)
    expect(last_reply(page).locator(".message__body")).to_have_text("Second answer.")
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "false")


def test_page_follows_a_streaming_reply_unless_the_reader_scrolled_up(
    page: Page, room: str, model: FakeOpenAI
):
    long_history = "\n\n".join(f"Paragraph {i} of an earlier answer." for i in range(30))
    model.queue(
        Reply(long_history),
        Reply(chunks=tuple(f"Line {i}.\n\n" for i in range(40)), tokens_per_second=12),
    )
    messages = page.locator("#messages")
    send(page, "Fill the room")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")

    send(page, "Keep going")
    reply = last_reply(page)
    expect(reply).to_contain_text("Line 5.")
    first = messages.evaluate(SCROLL_STATE)
    # The list itself scrolls (not the window), and it is at the bottom.
    assert first["top"] > 0 and page.evaluate("window.scrollY") == 0
    assert first["fromBottom"] < 5, "the page should follow the reply"
    # Grown since: a delta may bring several lines at once, so wait on the height.
    page.wait_for_function(
        "h => document.getElementById('messages').scrollHeight > h", arg=first["height"]
    )
    following = messages.evaluate(SCROLL_STATE)
    assert following["fromBottom"] < 5 and following["height"] > first["height"]

    # The reader scrolls up to read; the reply goes on growing below.
    messages.hover()
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "() => { const m = document.getElementById('messages');"
        " return m.scrollHeight - m.scrollTop - m.clientHeight > 300; }"
    )
    reading = messages.evaluate(SCROLL_STATE)
    expect(reply).to_contain_text("Line 20.")
    after = messages.evaluate(SCROLL_STATE)
    assert after["height"] > reading["height"]
    assert after["top"] == reading["top"], "the page must not jump while the reader reads"
    expect(reply).to_have_attribute("data-status", "complete", timeout=10_000)


FOCUSED = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    const ring = getComputedStyle(el.closest("#composer") || el);
    return {
        name: el.getAttribute("aria-label") || el.id || el.textContent.trim(),
        visible: style.outlineStyle !== "none" || ring.boxShadow !== "none",
    };
}"""


def test_keyboard_alone_reaches_everything_in_order_with_visible_focus(
    page: Page, room: str, model: FakeOpenAI
):
    model.queue(Reply("Typed without a mouse."))
    page.locator("body").click(position={"x": 1, "y": 300})
    stops = []
    for _ in range(11):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
    names = [stop["name"] for stop in stops]
    expected = [
        "Live Chat",
        "Search",
        "Log out",
        "Export (Markdown)",
        "Export (JSON)",
        "Edit and share",
        "Messages",
        "id_content",
        "Send",
    ]
    assert [n for n in names if n in expected][: len(expected)] == expected, names
    assert all(stop["visible"] for stop in stops if stop["name"] in expected), stops

    # Back to the composer, then type and send with the keyboard alone.
    while page.evaluate(FOCUSED)["name"] != "id_content":
        page.keyboard.press("Shift+Tab")
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    expect(last_reply(page).locator(".message__body")).to_have_text("Typed without a mouse.")
    assert page.evaluate(FOCUSED)["name"] == "id_content", "focus stays in the composer"


def test_a_korean_browser_gets_the_room_in_korean(
    new_context: Callable[..., BrowserContext], room: str, model: FakeOpenAI
):
    korean = new_context(locale="ko-KR").new_page()
    korean.goto(room)
    expect(korean.locator("html")).to_have_attribute("lang", "ko")
    # Set by chat.js from the translated data attributes once the socket opens.
    expect(korean.locator("#connection-state")).to_have_text("연결됨")
    expect(korean.get_by_role("button", name="보내기")).to_be_visible()
    expect(korean.get_by_label("메시지", exact=True)).to_have_attribute(
        "placeholder", "메시지… (Enter로 보내기, Shift+Enter로 줄바꿈)"
    )
    # What arrives over the websocket is in Korean too: the reply's controls, the fresh composer.
    model.queue(Reply("안녕하세요!"))
    korean.get_by_label("메시지", exact=True).fill("인사해 주세요")
    korean.get_by_label("메시지", exact=True).press("Enter")
    expect(last_reply(korean).locator(".message__body")).to_have_text("안녕하세요!")
    expect(last_reply(korean).get_by_role("button", name="다시 생성")).to_be_visible()
    expect(korean.get_by_label("메시지", exact=True)).to_have_attribute(
        "placeholder", "메시지… (Enter로 보내기, Shift+Enter로 줄바꿈)"
    )
