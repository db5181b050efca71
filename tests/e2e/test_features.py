"""The everyday tools in a real browser: edit and resend, copy, export, search."""

import json
import os
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import serving, sign_up
from tests.e2e.pages import last_reply, open_tab, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import ROOT, DaphneServer, redis_prefixes

pytestmark = pytest.mark.integration

CODE = 'def greet(name: str) -> str:\n    return f"안녕, {name}"'
CODE_REPLY = f"Here you go:\n\n```python\n{CODE}\n```\n\nCall it with a name."


@pytest.fixture(scope="module")
def app_server(
    redis_url: str, model_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphneServer]:
    """conftest's server, with short pages so that a search can open an old message."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        **redis_prefixes("e2e"),
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "test-model",
        "CHAT_PAGE_SIZE": "4",
        "CHAT_RATE_LIMIT": "200",
        "CHAT_PRICES": json.dumps({"test-model": {"prompt": 2, "completion": 8}}),
    }
    with serving(env) as server:
        yield server


@pytest.fixture
def room(page: Page, new_room: Callable[..., str]) -> str:
    path = new_room("Tools room")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    return path


def ask(page: Page, text: str) -> None:
    count = page.locator("#messages .message--assistant").count()
    send(page, text)
    expect(page.locator("#messages .message--assistant")).to_have_count(count + 1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def test_a_reply_shows_its_tokens_and_the_room_its_total(page: Page, room: str, model: FakeOpenAI):
    model.queue(Reply(chunks=("Two ", "tokens")))
    ask(page, "one two three")
    # The fake server counts the prompt's words and the reply's chunks.
    expect(last_reply(page).locator(".message__usage")).to_have_text(
        "test-model · 5 tokens (3 prompt, 2 reply) · $0.000022"
    )
    expect(page.locator("#room-usage")).to_contain_text("Room total: 5 tokens · $0.000022")
    expect(page.locator(".room-header__model")).to_have_text("test-model · temperature 1.0")


def test_edit_and_resend_by_keyboard_reaches_every_tab(
    page: Page, context: BrowserContext, room: str, model: FakeOpenAI
):
    model.queue(Reply("Paris."), Reply("Rome."))
    ask(page, "Capital of Frnace?")
    other = open_tab(context, room)
    question = page.locator("#messages .message--user").last
    edit = question.locator(".message__edit")
    expect(edit).to_be_visible()

    edit.locator("summary").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    field = question.get_by_label("Edited message")
    expect(field).to_be_focused()
    field.fill("Capital of Italy?")
    page.keyboard.press("Tab")
    expect(question.get_by_role("button", name="Save and resend")).to_be_focused()
    page.keyboard.press("Enter")

    for tab in (page, other):
        expect(tab.locator("#messages .message--user .message__body").last).to_have_text(
            "Capital of Italy?"
        )
        expect(tab.locator("#messages .message--assistant")).to_have_count(1)
        expect(last_reply(tab).locator(".message__body")).to_have_text("Rome.")
    assert model.requests[-1]["messages"][-1] == {"role": "user", "content": "Capital of Italy?"}


def test_a_reaction_and_feedback_by_keyboard_after_a_reload(
    page: Page, room: str, model: FakeOpenAI
):
    model.queue(Reply("Paris."))
    ask(page, "Capital of France?")
    page.reload()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    extras = page.locator(f"#extras-{last_reply(page).get_attribute('data-pk')}")
    # The page holds the picker's choices once; a picker gets them when it opens.
    expect(page.locator("#messages .reactions__picker button")).to_have_count(0)
    extras.locator(".reactions__picker summary").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(extras.get_by_role("button", name="❤️")).to_be_focused()
    page.keyboard.press("Enter")
    chip = extras.locator(".reactions__chip")
    expect(chip).to_have_attribute("aria-label", "❤️ from alice")
    expect(chip).to_have_attribute("aria-pressed", "true")

    # The reply's feedback form, filled from the page's one set of fields.
    feedback = extras.locator(".feedback")
    feedback.get_by_text("Add a comment").focus()
    page.keyboard.press("Enter")
    feedback.get_by_label("Comment (optional)").fill("Short and right.")
    feedback.get_by_role("button", name="Helpful", exact=True).focus()
    page.keyboard.press("Enter")
    expect(feedback.get_by_role("status")).to_have_text("Thank you: your feedback was saved.")
    page.reload()
    expect(feedback.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(feedback.get_by_label("Comment (optional)")).to_have_value("Short and right.")


def test_only_the_last_own_message_offers_edit(page: Page, room: str):
    ask(page, "first")
    ask(page, "second")
    user_messages = page.locator("#messages .message--user")
    expect(user_messages.first.locator(".message__edit")).to_be_hidden()
    expect(user_messages.last.locator(".message__edit")).to_be_visible()


def test_a_member_sees_no_edit_on_someone_else_s_message(
    page: Page,
    room: str,
    browser: Browser,
    app_server: DaphneServer,
    new_context: Callable[..., BrowserContext],
):
    bob = new_context(storage_state=sign_up(browser, app_server, "bob")).new_page()
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    page.locator("#members").get_by_label("Username").fill("bob")
    page.locator("#members").get_by_role("button", name="Share").click()
    expect(page.locator(".members__name")).to_have_text(["bob"])
    page.goto(room)
    ask(page, "alice asks")
    bob.goto(room)
    question = bob.locator("#messages .message--user").last
    expect(question.locator(".message__body")).to_have_text("alice asks")
    expect(question.get_by_role("button", name="Copy message")).to_be_visible()
    expect(question.locator(".message__edit")).to_be_hidden()


def test_copy_a_code_block_and_a_message(
    context: BrowserContext, page: Page, room: str, model: FakeOpenAI
):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    model.queue(Reply(CODE_REPLY))
    ask(page, "A greeting function, please")

    copy_code = last_reply(page).get_by_role("button", name="Copy code")
    copy_code.click()
    expect(last_reply(page).locator(".code .copy__status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == CODE

    # By keyboard: the message's own Copy button.
    question = page.locator("#messages .message--user")
    copy_message = question.get_by_role("button", name="Copy message")
    copy_message.focus()
    page.keyboard.press("Enter")
    expect(question.get_by_role("status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "A greeting function, please"
    # A reply is copied as the model wrote it, Markdown and all.
    last_reply(page).get_by_role("button", name="Copy message").click()
    expect(last_reply(page).locator(".message__tools .copy__status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == CODE_REPLY


def test_copy_is_labelled_in_korean(
    new_context: Callable[..., BrowserContext], room: str, page: Page, model: FakeOpenAI
):
    model.queue(Reply(CODE_REPLY))
    ask(page, "코드")
    korean = new_context(locale="ko-KR").new_page()
    korean.goto(room)
    expect(last_reply(korean).get_by_role("button", name="코드 복사")).to_be_visible()
    expect(last_reply(korean).get_by_role("button", name="메시지 복사")).to_be_visible()


def test_export_downloads_the_room(page: Page, room: str, model: FakeOpenAI):
    model.queue(Reply("An answer."))
    ask(page, "A question")
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Export (Markdown)").click()
    assert re.fullmatch(r"tools-room-\d+\.md", markdown.value.suggested_filename)
    text = markdown.value.path().read_text(encoding="utf-8")
    assert text.startswith("# Tools room") and "A question" in text and "An answer." in text
    with page.expect_download() as data:
        page.get_by_role("link", name="Export (JSON)").click()
    exported = json.loads(data.value.path().read_text(encoding="utf-8"))
    assert [m["content"] for m in exported["messages"]] == ["A question", "An answer."]


def test_search_finds_an_old_answer_and_opens_it_in_place(page: Page, room: str, model: FakeOpenAI):
    model.queue(Reply("The 퇴직금 counts as 근로소득 when paid with the salary."))
    ask(page, "How is a retirement payment taxed?")
    for i in range(6):
        ask(page, f"Later question {i}")
    page.goto(room)
    expect(page.get_by_text("근로소득 when paid")).to_have_count(0)  # beyond the first page

    page.get_by_role("link", name="Search").click()
    box = page.get_by_label("Search your rooms")
    box.press_sequentially("근로소", delay=30)
    hit = page.locator("#results .hit").first
    expect(hit.locator(".hit__room")).to_have_text("Tools room")
    expect(hit.locator("mark")).to_have_text("근로소")
    hit.locator("a").click()

    found = page.locator("#messages .message--found")
    expect(found).to_have_count(1)
    expect(found.locator(".message__body")).to_contain_text("근로소득 when paid")
    expect(found).to_be_in_viewport()
    # The page was rendered from the found message on, past the usual 4 newest.
    expect(page.locator("#messages article")).to_have_count(14)


@pytest.mark.skipif(not os.environ.get("SCREENSHOTS"), reason="set SCREENSHOTS=1 to retake")
def test_screenshots(
    new_context: Callable[..., BrowserContext], new_room: Callable[..., str], model: FakeOpenAI
):
    """docs/screenshots/room-tools.png and search.png (English only: the machines that
    take them may have no Korean font)."""
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    context = new_context(
        viewport={"width": 1100, "height": 980}, permissions=["clipboard-read", "clipboard-write"]
    )
    tab = context.new_page()
    tab.goto(
        new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    )
    expect(tab.locator("#connection-state")).to_have_attribute("data-state", "online")
    greeting = '```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}"\n```'
    model.queue(
        Reply("Bring your **withholding receipt** and the card spending totals from Hometax."),
        Reply(f"Here it is:\n\n{greeting}"),
    )
    ask(tab, "What do I need for the year-end settlement?")
    ask(tab, "And a greeting function in Python?")
    last_reply(tab).get_by_role("button", name="Copy code").click()
    tab.locator("#messages .message--user").last.locator(".message__edit summary").click()
    tab.locator("#messages").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    (shots / "room-tools.png").write_bytes(tab.screenshot())
    tab.goto("/chat/search/")
    tab.get_by_label("Search your rooms").press_sequentially("receipt", delay=30)
    expect(tab.locator("#results .hit")).to_have_count(1)
    (shots / "search.png").write_bytes(
        tab.screenshot(clip={"x": 0, "y": 0, "width": 1100, "height": 420})
    )
