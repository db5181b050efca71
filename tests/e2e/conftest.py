"""Browser tests: Debian's Chromium, driven by Playwright, against a live daphne.

Each module gets its own daphne (a fresh SQLite file, the session's Redis and
model server) and its own browser; each test gets a fresh browser context.
"""

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    StorageState,
    expect,
    sync_playwright,
)

from tests.fakeopenai import FakeOpenAI
from tests.servers import DaphneServer, migrate, redis_prefixes
from tests.slow import patience

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 750}
# Playwright's own bounds (5 s for an expectation, 30 s for an action), for a busy machine.
expect.set_options(timeout=patience(5) * 1000)
ACTION_TIMEOUT_MS = patience(30) * 1000
PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="module")
def app_server(
    redis_url: str,
    model_server: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[DaphneServer]:
    """The module's daphne; a module's SERVER_ENV adds to (or overrides) its settings."""
    database = tmp_path_factory.mktemp("e2e") / "db.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        **redis_prefixes("e2e"),
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "test-model",
        **getattr(request.module, "SERVER_ENV", {}),
    }
    with serving(env) as server:
        yield server


@contextmanager
def serving(env: dict[str, str]) -> Iterator[DaphneServer]:
    """A migrated database served by a daphne of its own, for one module's tests."""
    # Both take seconds to import Django; migrating while daphne starts halves the wait.
    server = DaphneServer(env)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            migrated = pool.submit(migrate, env)
            server.start()
            migrated.result()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def sign_up(browser: Browser, server: DaphneServer, username: str) -> StorageState:
    """Create an account through the sign-up page; returns its cookies."""
    context = browser.new_context(base_url=server.http_url)
    page = context.new_page()
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture(scope="module")
def signed_in(browser: Browser, app_server: DaphneServer) -> StorageState:
    """The cookies of someone who signed up through the page, shared by the module's tests."""
    return sign_up(browser, app_server, "alice")


@pytest.fixture
def new_context(
    browser: Browser, app_server: DaphneServer, signed_in: StorageState
) -> Iterator[Callable[..., BrowserContext]]:
    """Make fresh browser profiles, signed in; JavaScript errors in their pages fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def make(**options: Any) -> BrowserContext:
        defaults = {
            "base_url": app_server.http_url,
            "viewport": VIEWPORT,
            "locale": "en-US",
            "storage_state": signed_in,
        }
        context = browser.new_context(**(defaults | options))
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.on("weberror", lambda error: errors.append(str(error.error)))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert errors == [], "a page raised JavaScript errors"


@pytest.fixture
def violations() -> Iterator[list[str]]:
    """What the CSP refused in the test's pages (pages.report_csp_violations): none."""
    found: list[str] = []
    yield found
    assert found == [], "Content-Security-Policy violations"


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    """One person's browser: its tabs share cookies."""
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def new_room(page: Page) -> Callable[..., str]:
    """Create a room through the form; returns the room's path."""

    def create(name: str = "Test room", system_prompt: str = "") -> str:
        page.goto("/chat/new/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("System prompt").fill(system_prompt)
        page.get_by_role("button", name="Create room").click()
        page.wait_for_url(re.compile(r"/chat/\d+/$"))
        return urlsplit(page.url).path

    return create
