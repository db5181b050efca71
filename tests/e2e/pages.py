"""What the browser tests do on a room page, the way a person would."""

from playwright.sync_api import BrowserContext, Locator, Page, expect


def open_tab(context: BrowserContext, path: str) -> Page:
    """Another tab of the same browser, once its socket is live."""
    tab = context.new_page()
    tab.goto(path)
    expect(tab.locator("#connection-state")).to_have_attribute("data-state", "online")
    return tab


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    # Send is enabled once the socket is open: nothing is sent, or queued, before.
    expect(page.locator("#composer button[type=submit]")).to_be_enabled()
    page.get_by_label("Message", exact=True).press("Enter")


def last_reply(page: Page) -> Locator:
    return page.locator("#messages .message--assistant").last
