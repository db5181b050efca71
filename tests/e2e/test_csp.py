"""The Content-Security-Policy in Chromium: every page, live updates and htmx swaps
included, runs without one violation.

Each page reports violations (the `securitypolicyviolation` event) to the test as
they happen, from a script the browser injects before the page's own; a test
fails on any. The first test shows the listener catches one.
"""

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from tests.conftest import TAXLAW_SAMPLE
from tests.e2e.conftest import VIEWPORT
from tests.e2e.pages import last_reply, open_tab, report_csp_violations, send
from tests.fakeopenai import FakeOpenAI, Reply
from tests.servers import ROOT, DaphneServer

pytestmark = pytest.mark.integration

MARKDOWN = (
    "Here is **bold**, a [link](https://example.com) and code:\n\n"
    "```python\nprint('hello')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
)


@pytest.fixture
def watched(
    browser: Browser, app_server: DaphneServer, violations: list[str]
) -> Iterator[Callable[..., BrowserContext]]:
    """Browser profiles whose every page reports CSP violations to `violations`."""
    contexts: list[BrowserContext] = []

    def make(storage_state: StorageState | None = None) -> BrowserContext:
        context = browser.new_context(
            base_url=app_server.http_url,
            viewport=VIEWPORT,
            locale="en-US",
            storage_state=storage_state,
        )
        report_csp_violations(context, violations)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def signed_in_page(watched, signed_in: StorageState) -> Page:
    return watched(signed_in).new_page()


def settle(page: Page) -> None:
    """Let late violations (a swapped fragment, a style applied after load) arrive."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)


def test_the_listener_catches_a_violation(browser: Browser, app_server: DaphneServer):
    found: list[str] = []
    context = browser.new_context(base_url=app_server.http_url)
    report_csp_violations(context, found)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.evaluate(
        """() => document.body.insertAdjacentHTML(
            "beforeend", '<p style="color: red">inline</p>')"""
    )
    page.wait_for_timeout(300)
    context.close()
    assert any("style-src-attr refused inline" in line for line in found), found


def test_the_policy_is_sent_with_every_page(app_server: DaphneServer):
    with urllib.request.urlopen(f"{app_server.http_url}/accounts/login/") as response:
        policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"].startswith("'self' ws://")
    assert "unsafe" not in policy


def test_logged_out_pages(watched):
    page = watched().new_page()
    for path in ("/accounts/login/", "/accounts/signup/", "/admin/login/"):
        page.goto(path)
        settle(page)
    # A failed log-in re-renders the form with its error.
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    settle(page)


def test_room_pages_and_forms(signed_in_page: Page):
    page = signed_in_page
    page.goto("/chat/")
    settle(page)
    page.goto("/chat/new/")
    # An htmx submit that comes back with an inline error.
    page.get_by_role("button", name="Create room").click()
    settle(page)
    page.get_by_label("Name").fill("CSP room")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    room = page.url
    page.goto(room + "edit/")
    settle(page)
    page.goto("/chat/")
    settle(page)


def test_a_room_mid_reply_and_after_it(signed_in_page: Page, new_room_path: str, model: FakeOpenAI):
    page = signed_in_page
    page.goto(new_room_path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    model.queue(Reply(MARKDOWN * 3, tokens_per_second=40))
    send(page, "Show me some Markdown")
    expect(last_reply(page)).to_have_attribute("data-status", "streaming")
    # A second tab opens mid-reply, and catches up.
    other = open_tab(page.context, new_room_path)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(last_reply(other)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(last_reply(page).locator("pre")).to_have_count(3)
    # Stop, Regenerate: the reply's controls swap fragments too.
    model.queue(Reply("again " * 200, tokens_per_second=40))
    page.get_by_role("button", name="Regenerate").click()
    page.get_by_role("button", name="Stop").click()
    expect(last_reply(page)).to_have_attribute("data-status", "stopped", timeout=10_000)
    settle(page)
    settle(other)


def test_a_reaction_feedback_and_an_edit(
    signed_in_page: Page, new_room_path: str, model: FakeOpenAI
):
    """What the page fills in from its templates, and htmx's swap of the feedback form."""
    page = signed_in_page
    page.goto(new_room_path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    model.queue(Reply("Paris."))
    send(page, "Capital of France?")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    extras = page.locator(f"#extras-{last_reply(page).get_attribute('data-pk')}")
    extras.locator(".reactions__picker summary").click()
    extras.get_by_role("button", name="👍").click()
    expect(extras.locator(".reactions__chip")).to_have_attribute("aria-pressed", "true")
    extras.get_by_role("button", name="Not helpful").click()
    expect(extras.get_by_role("status")).to_have_text("Thank you: your feedback was saved.")
    page.locator("#messages .message--user .message__edit summary").last.click()
    expect(page.get_by_role("button", name="Save and resend")).to_be_visible()
    settle(page)


def test_the_tax_law_search_and_a_grounded_reply(
    signed_in_page: Page, taxlaw_loaded: None, new_room_path: str
):
    page = signed_in_page
    page.goto("/chat/docs/law/tax/")
    settle(page)
    # Typing swaps the results in with htmx.
    page.get_by_role("searchbox").fill("퇴직금")
    expect(page.locator("#results .doc").first).to_be_visible()
    page.locator("#results .doc summary").first.click()
    settle(page)
    page.goto("/chat/docs/law/tax/?query=%EC%86%8C%EB%93%9D")
    settle(page)

    page.goto(new_room_path)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "online")
    send(page, "!급여에 포함하여 지급되는 퇴직금의 소득 구분은?")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(last_reply(page).locator("a[href^='http']").first).to_be_visible()
    settle(page)


@pytest.fixture
def new_room_path(signed_in_page: Page) -> str:
    page = signed_in_page
    page.goto("/chat/new/")
    page.get_by_label("Name").fill("Watched room")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    return urlsplit(page.url).path


@pytest.fixture(scope="module")
def taxlaw_loaded(app_server: DaphneServer) -> None:
    """The 10-document sample, in the served database."""
    if not TAXLAW_SAMPLE.exists():
        pytest.skip(f"the tax-law sample is not at {TAXLAW_SAMPLE}; set TAXLAW_SAMPLE to it")
    load = [sys.executable, "manage.py", "load_jsonl", "chat.TaxLawDocument", str(TAXLAW_SAMPLE)]
    subprocess.run(load, cwd=ROOT, env={**os.environ, **app_server.env}, check=True)
