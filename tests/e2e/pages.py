"""What the browser tests do on a room page, the way a person would."""

from playwright.sync_api import BrowserContext, Locator, Page, expect

# Injected before the page's own scripts: each Content-Security-Policy violation is
# handed to the test as it happens.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
    window.reportViolation(
        `${location.pathname}: ${event.effectiveDirective} refused ` +
        `${event.blockedURI} (${event.sourceFile}:${event.lineNumber})`
    );
});
"""


def report_csp_violations(context: BrowserContext, found: list[str]) -> None:
    """Every page of `context` appends what the CSP refused to `found`."""
    context.expose_function("reportViolation", lambda line: found.append(line))
    context.add_init_script(CSP_LISTENER)


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
