"""The screenshots in docs/screenshots/, retaken with SCREENSHOTS=1 (see docs/ui.md)."""

import io
import os
from collections.abc import Callable

import numpy as np
import pytest
from matplotlib import image
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from tests.e2e.conftest import sign_up
from tests.e2e.pages import send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import ROOT, DaphneServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("SCREENSHOTS"), reason="set SCREENSHOTS=1 to retake"),
]

SHOTS = ROOT / "docs" / "screenshots"

TAX_REPLY = """For a **year-end tax settlement** you usually need:

1. Your withholding receipt (*근로소득 원천징수영수증*)
2. Receipts for deductions: medical, education, donations
3. Card spending totals from the **Hometax** simplified service

A quick check of the card deduction threshold:

```python
def card_deduction_applies(salary: int, card_spending: int) -> bool:
    # Spending above 25% of gross salary counts.
    return card_spending > salary * 0.25
```

Ask me about any of these and I will go into detail."""


def finished(page: Page) -> None:
    reply = page.locator("#messages .message--assistant").last
    expect(reply).not_to_have_attribute("data-status", "streaming", timeout=15_000)


@pytest.fixture(scope="module")
def person(browser: Browser, app_server: DaphneServer) -> Callable[[str], StorageState]:
    """The cookies of someone signed up through the page, once per name: the
    module's screenshots share one server and its accounts."""
    accounts: dict[str, StorageState] = {}

    def signed_up(name: str) -> StorageState:
        if name not in accounts:
            accounts[name] = sign_up(browser, app_server, name)
        return accounts[name]

    return signed_up


def save(name: str, png: bytes) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / name).write_bytes(png)


def test_room_list(page: Page, new_room: Callable[..., str], model: FakeOpenAI):
    new_room("Weekend in Jeju", "You plan short trips: a day-by-day list, with costs in won.")
    model.queue(Reply("Day 1: Seongsan Ilchulbong at sunrise, then the east coast cafés."))
    send(page, "Two days in Jeju in May?")
    finished(page)
    new_room("Code review", "Review Python diffs. Be specific and kind.")
    new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    model.queue(Reply(TAX_REPLY))
    send(page, "What do I need for 연말정산?")
    finished(page)
    page.goto("/chat/")
    save("room-list.png", page.screenshot())


def test_room_form_with_an_error(page: Page):
    page.goto("/chat/new/")
    page.get_by_label("System prompt").fill("You answer Korean tax questions, citing the law.")
    page.get_by_role("button", name="Create room").click()
    expect(page.locator("#id_name_error")).to_be_visible()
    save("room-form-error.png", page.screenshot())


def test_room_mid_reply_in_two_tabs(
    new_context: Callable[..., BrowserContext], new_room: Callable[..., str], model: FakeOpenAI
):
    path = new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    narrow = new_context(viewport={"width": 550, "height": 750})
    tabs = [narrow.new_page(), narrow.new_page()]
    for tab in tabs:
        tab.goto(path)
        expect(tab.locator("#connection-state")).to_have_attribute("data-state", "online")
    model.queue(Reply("Happy to help. What would you like to know?"))
    send(tabs[0], "Hi! I have a question about 연말정산.")
    finished(tabs[0])
    model.queue(Reply(TAX_REPLY, tokens_per_second=25))
    send(tabs[1], "What do I need to prepare?")
    for tab in tabs:
        expect(tab.locator("#messages")).to_contain_text("simplified service")
    shots = [image.imread(io.BytesIO(tab.screenshot()), format="png") for tab in tabs]
    gap = np.ones((shots[0].shape[0], 8, shots[0].shape[2]), dtype=shots[0].dtype)
    buffer = io.BytesIO()
    image.imsave(buffer, np.hstack([shots[0], gap * 0.5, shots[1]]), format="png")
    save("room-two-tabs.png", buffer.getvalue())


def test_room_in_dark_mode(new_context: Callable[..., BrowserContext], new_room, model):
    path = new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    dark = new_context(color_scheme="dark").new_page()
    dark.goto(path)
    model.queue(Reply(TAX_REPLY))
    send(dark, "What do I need for 연말정산?")
    finished(dark)
    save("room-dark.png", dark.screenshot())


def test_log_in_page(new_context: Callable[..., BrowserContext]):
    page = new_context(storage_state=None).new_page()
    page.goto("/accounts/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    save("log-in.png", page.screenshot())


def test_room_edit_with_members(
    page: Page, new_room: Callable[..., str], person: Callable[[str], StorageState]
):
    for name in ("minji", "junho"):
        person(name)
    new_room("Weekend in Jeju", "You plan short trips: a day-by-day list, with costs in won.")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    members = page.locator("#members")
    for name in ("minji", "junho"):
        members.get_by_label("Username").fill(name)
        members.get_by_role("button", name="Share").click()
        expect(members.locator(".members__name", has_text=name)).to_be_visible()
    save("room-edit-members.png", page.screenshot(full_page=True))


def test_shared_room_with_two_people_and_a_queued_question(
    new_context: Callable[..., BrowserContext],
    new_room: Callable[..., str],
    page: Page,
    person: Callable[[str], StorageState],
    model: FakeOpenAI,
):
    minji = person("minji")
    path = new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    page.locator("#members").get_by_label("Username").fill("minji")
    page.locator("#members").get_by_role("button", name="Share").click()
    expect(page.locator("#members .members__name")).to_have_text(["minji"])
    narrow = {"viewport": {"width": 550, "height": 750}}
    tabs = [new_context(**narrow).new_page(), new_context(storage_state=minji, **narrow).new_page()]
    for tab in tabs:
        tab.goto(path)
    for tab in tabs:
        expect(tab.locator("#presence .presence__name")).to_have_count(2)
    model.queue(Reply("Happy to help, both of you. What would you like to know?"))
    send(tabs[0], "Hi! Minji and I are doing our year-end settlement together.")
    finished(tabs[0])
    model.queue(Reply(TAX_REPLY, tokens_per_second=12), Reply("The threshold is 25%."))
    send(tabs[0], "What do I need to prepare?")
    expect(tabs[1].locator("#messages")).to_contain_text("withholding receipt")
    send(tabs[1], "And is there a minimum for the card deduction?")
    for tab in tabs:
        expect(tab.locator("#queue .queue__item")).to_contain_text("Queued · 1")
    tabs[0].get_by_label("Message", exact=True).press_sequentially("Thanks")
    expect(tabs[1].locator("#typing")).to_contain_text("alice is typing…")
    shots = [image.imread(io.BytesIO(tab.screenshot()), format="png") for tab in tabs]
    gap = np.ones((shots[0].shape[0], 8, shots[0].shape[2]), dtype=shots[0].dtype)
    buffer = io.BytesIO()
    image.imsave(buffer, np.hstack([shots[0], gap * 0.5, shots[1]]), format="png")
    save("shared-room-queue.png", buffer.getvalue())


KOREAN_REPLY = """연말정산에는 보통 다음 서류가 필요합니다.

1. **근로소득 원천징수영수증** (회사에서 발급)
2. 의료비·교육비·기부금 영수증
3. 홈택스 *간소화 서비스*의 신용카드 사용액

카드 공제는 총급여의 25%를 넘게 쓴 금액부터 적용됩니다. 궁금한 항목을 물어보세요."""


def korean(new_context: Callable[..., BrowserContext], **options) -> BrowserContext:
    return new_context(
        locale="ko-KR", extra_http_headers={"Accept-Language": "ko-KR,ko;q=0.9"}, **options
    )


def ask(page: Page, text: str) -> None:
    page.locator("#composer textarea").fill(text)
    page.locator("#composer textarea").press("Enter")


def test_room_in_korean(new_context: Callable[..., BrowserContext], new_room, model):
    path = new_room("연말정산 도우미", "한국 세법을 근거로 연말정산 질문에 답합니다.")
    page = korean(new_context).new_page()
    page.goto(path)
    model.queue(Reply(KOREAN_REPLY))
    ask(page, "연말정산 준비물이 뭐예요?")
    finished(page)
    save("room-korean.png", page.screenshot())


def test_room_on_a_phone_with_its_menu(new_context: Callable[..., BrowserContext], new_room, model):
    path = new_room("연말정산 도우미", "한국 세법을 근거로 연말정산 질문에 답합니다.")
    page = korean(new_context, viewport={"width": 390, "height": 844}).new_page()
    page.goto(path)
    model.queue(Reply(KOREAN_REPLY))
    ask(page, "연말정산 준비물이 뭐예요?")
    finished(page)
    closed = image.imread(io.BytesIO(page.screenshot()), format="png")
    page.get_by_role("button", name="방 메뉴").click()
    opened = image.imread(io.BytesIO(page.screenshot()), format="png")
    gap = np.ones((closed.shape[0], 8, closed.shape[2]), dtype=closed.dtype)
    buffer = io.BytesIO()
    image.imsave(buffer, np.hstack([closed, gap * 0.5, opened]), format="png")
    save("room-phone.png", buffer.getvalue())


def test_shared_room_with_a_mention_a_reaction_and_a_recap(
    new_context: Callable[..., BrowserContext],
    new_room: Callable[..., str],
    page: Page,
    person: Callable[[str], StorageState],
    model: FakeOpenAI,
):
    minji = person("minji")
    path = new_room("Year-end tax settlement", "You answer Korean tax questions, citing the law.")
    page.get_by_role("link", name="Edit and share").click()
    page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
    page.locator("#members").get_by_label("Username").fill("minji")
    page.locator("#members").get_by_role("button", name="Share").click()
    expect(page.locator("#members .members__name")).to_have_text(["minji"])
    narrow = {"viewport": {"width": 550, "height": 1250}}
    alice = new_context(**narrow).new_page()
    alice.goto(path)
    minji_tab = new_context(storage_state=minji, **narrow).new_page()
    minji_tab.goto(path)
    expect(minji_tab.locator("#connection-state")).to_have_attribute("data-state", "online")
    minji_tab.close()  # minji leaves: what follows is new to her
    expect(alice.locator("#presence .presence__name")).to_have_count(1)
    model.queue(Reply(TAX_REPLY))
    send(alice, "What do we need for 연말정산? @minji can you bring your card totals?")
    finished(alice)
    extras = alice.locator("#messages .message__extras").last.locator(".reactions")
    extras.locator("summary").click()
    extras.get_by_role("button", name="👍").click()
    expect(extras.locator(".reactions__chip")).to_have_count(1)
    minji_tab = new_context(storage_state=minji, **narrow).new_page()
    minji_tab.goto(path)
    expect(minji_tab.locator("#since-divider")).to_be_visible()
    model.queue(
        Reply(
            "- **alice** asked what the year-end settlement needs, and asked you to bring "
            "your card totals [1].\n- The AI listed the withholding receipt, deduction "
            "receipts and Hometax card totals [2].",
            tokens_per_second=40,
        )
    )
    minji_tab.get_by_role("button", name="Catch me up").click()
    expect(minji_tab.locator("#recap")).to_contain_text("Hometax card totals [2]")
    expect(minji_tab.locator("#recap")).to_have_attribute("aria-busy", "false")
    # The recap, the divider and the mention together, from the top of the conversation.
    minji_tab.evaluate("document.querySelectorAll('*').forEach(e => { e.scrollTop = 0; })")
    shots = [image.imread(io.BytesIO(tab.screenshot()), format="png") for tab in (alice, minji_tab)]
    gap = np.ones((shots[0].shape[0], 8, shots[0].shape[2]), dtype=shots[0].dtype)
    buffer = io.BytesIO()
    image.imsave(buffer, np.hstack([shots[0], gap * 0.5, shots[1]]), format="png")
    save("shared-room-catch-up.png", buffer.getvalue())
