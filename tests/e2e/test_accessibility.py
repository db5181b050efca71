"""axe-core on every page: no serious or critical violation in Korean or English,
light or dark, on a desktop or a phone, a room mid-reply included.

axe-core comes from npm into tests/e2e/axe (`npm ci --prefix tests/e2e/axe`), never
from the app: it is injected into contexts that bypass the CSP, and only here.
"""

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from tests.e2e.conftest import serving, sign_up
from tests.e2e.pages import send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import DaphneServer, redis_prefixes

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
FAST = {("ko", "light", "phone"), ("en", "dark", "desktop")}
LANGUAGES = {"en": "en-US,en;q=0.9", "ko": "ko-KR,ko;q=0.9"}


@pytest.fixture(scope="module", autouse=True)
def axe_installed() -> None:
    if not AXE.exists():
        reason = f"no {AXE} (npm ci --prefix tests/e2e/axe)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass(frozen=True)
class Site:
    room: str  # alice's room, with a finished reply
    shared: str  # bob's room, shared with alice: she can leave it
    bob: StorageState


@pytest.fixture(scope="module")
def site(
    browser: Browser, app_server: DaphneServer, signed_in: StorageState, model_server: FakeOpenAI
) -> Site:
    """Rooms made once through the pages, for every combination to visit."""
    bob = sign_up(browser, app_server, "bob")
    paths = []
    for state, name in [(signed_in, "연말정산 질문"), (bob, "Bob's room")]:
        context = browser.new_context(base_url=app_server.http_url, storage_state=state)
        page = context.new_page()
        page.goto("/chat/new/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("System prompt").fill("You answer Korean tax questions.")
        page.get_by_role("button", name="Create room").click()
        page.wait_for_url(re.compile(r"/chat/\d+/$"))
        paths.append(page.url.removeprefix(app_server.http_url))
        if state is bob:
            page.get_by_role("link", name="Edit and share").click()
            page.wait_for_url("**/edit/")  # loaded: htmx binds the forms
            page.locator("#members").get_by_label("Username").fill("alice")
            page.locator("#members").get_by_role("button", name="Share").click()
            expect(page.locator("#members .members__name")).to_have_text(["alice"])
        else:
            model_server.reset()
            model_server.queue(Reply("퇴직금은 **근로소득**이 아니라 `퇴직소득`입니다."))
            send(page, "퇴직금의 소득 구분은?")
            expect(page.locator('#messages [data-status="complete"]')).to_have_count(1)
        context.close()
    return Site(room=paths[0], shared=paths[1], bob=bob)


def violations(page: Page) -> list[str]:
    """The serious and critical findings on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
    )
    return [
        f"{page.url} {v['id']} ({v['impact']}): "
        + json.dumps([n["target"] for n in v["nodes"]][:5], ensure_ascii=False)
        + " "
        + v["nodes"][0]["failureSummary"].replace("\n", " ")[:200]
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def axe_context(
    browser: Browser, app_server: DaphneServer, signed_in: StorageState
) -> Iterator[Callable[..., BrowserContext]]:
    contexts: list[BrowserContext] = []

    def make(*, language: str, scheme: str, viewport: dict, state: StorageState | None):
        context = browser.new_context(
            base_url=app_server.http_url,
            bypass_csp=True,  # only so axe can be injected
            viewport=viewport,
            color_scheme=scheme,
            locale="ko-KR" if language == "ko" else "en-US",
            extra_http_headers={"Accept-Language": LANGUAGES[language]},
            storage_state=state,
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# Two opposite combinations in every run; the other six with the slow tests.
COMBINATIONS = [
    pytest.param(
        language,
        scheme,
        viewport,
        id=f"{language}-{scheme}-{size}",
        marks=[] if (language, scheme, size) in FAST else [pytest.mark.slow],
    )
    for language in ("en", "ko")
    for scheme in ("light", "dark")
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE))
]


@pytest.mark.parametrize(("language", "scheme", "viewport"), COMBINATIONS)
def test_every_page_passes_axe(
    axe_context: Callable[..., BrowserContext],
    signed_in: StorageState,
    site: Site,
    model: FakeOpenAI,
    language: str,
    scheme: str,
    viewport: dict,
):
    found: list[str] = []
    signed_out = axe_context(language=language, scheme=scheme, viewport=viewport, state=None)
    page = signed_out.new_page()
    for path in ["/accounts/login/", "/accounts/signup/"]:
        page.goto(path)
        found += violations(page)

    alice = axe_context(language=language, scheme=scheme, viewport=viewport, state=signed_in)
    page = alice.new_page()
    room = site.room.rstrip("/")
    for path in [
        "/chat/",
        "/chat/new/",
        f"{room}/edit/",
        f"{room}/delete/",
        "/chat/search/?q=퇴직금",
        "/chat/docs/law/tax/",
        "/chat/999999/",
        site.shared,
    ]:
        page.goto(path)
        found += violations(page)

    # A form with errors, and the room mid-reply with its Stop button and indicator.
    page.goto("/chat/new/")
    page.locator("#room-form button[type=submit]").click()
    expect(page.locator("#id_name_error")).to_be_visible()
    found += violations(page)

    page.goto(site.room)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    model.queue(Reply(chunks=tuple(f"단어{i} " for i in range(400)), tokens_per_second=20))
    page.locator("#composer textarea").fill("A long answer, please.")
    page.locator("#composer textarea").press("Enter")
    streaming = page.locator('#messages article[data-status="streaming"]')
    expect(streaming.locator(".typing")).to_be_visible()
    found += violations(page)
    menu = page.locator(".room-menu__toggle")
    if menu.is_visible():
        menu.click()
        found += violations(page)
    streaming.locator("form.message__action button").click()
    expect(streaming).to_have_count(0)

    # "Copied" beside a Copy button.
    alice.grant_permissions(["clipboard-read", "clipboard-write"])
    question = page.locator("#messages .message--user").first
    question.locator("button.copy").click()
    expect(question.get_by_role("status")).to_be_visible()
    found += violations(page)

    assert found == [], "\n".join(found)


def test_the_offline_demo_badge_passes_axe_in_light_and_dark(
    browser: Browser, tmp_path: Path, redis_url: str
):
    """The demo badge shows only with no model configured: a server of its own."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        **redis_prefixes("axe"),
    }
    with serving(env) as server:
        state = sign_up(browser, server, "minji")
        found: list[str] = []
        for scheme, viewport in [("light", DESKTOP), ("dark", DESKTOP), ("dark", PHONE)]:
            context = browser.new_context(
                base_url=server.http_url,
                bypass_csp=True,
                color_scheme=scheme,
                viewport=viewport,
                storage_state=state,
                extra_http_headers={"Accept-Language": LANGUAGES["ko"]},
            )
            page = context.new_page()
            page.goto("/chat/")
            if viewport is DESKTOP:
                expect(page.locator(".model--demo")).to_be_visible()
            found += violations(page)
            context.close()
    assert found == [], "\n".join(found)
