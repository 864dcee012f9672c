"""A real browser for tests: Debian's Chromium driven by Playwright, headless, and a watch on a
page that keeps it to one origin and records what it tried to reach elsewhere and what failed.

The browser resolves SERVICE_HOST to 127.0.0.1. Tests open the service by that name rather than
by 127.0.0.1, because some page code behaves differently on loopback addresses (Swagger UI, for
one, only calls its online validator for hosts other than localhost and 127.0.0.1).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    # Only for types: this module imports without Playwright, so that the browser fixture can
    # skip (or fail, in CI) with a reason instead of the whole run stopping at collection.
    from playwright.async_api import Browser, ConsoleMessage, Page, Route

SERVICE_HOST = "wa-outbound.test"
# Debian's binary itself: its /usr/bin/chromium wrapper adds extension flags of its own.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def find_chromium() -> str | None:
    """WA_TEST_CHROMIUM's browser, else Debian's Chromium (`apt-get install chromium`), or None."""
    candidates = [os.environ.get("WA_TEST_CHROMIUM", ""), *CHROMIUM_PATHS]
    found = [p for p in candidates if p and os.access(p, os.X_OK)]
    return found[0] if found else shutil.which("chromium")


def browser_unavailable() -> str | None:
    """Why no browser test can run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for the block; never one Playwright downloads (`playwright install`)."""
    from playwright.async_api import async_playwright

    executable_path = find_chromium()
    assert executable_path is not None, browser_unavailable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable_path,
            headless=True,
            args=[
                f"--host-resolver-rules=MAP {SERVICE_HOST} 127.0.0.1",
                # Containers often have a small /dev/shm, on which Chromium's renderers crash.
                "--disable-dev-shm-usage",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


def service_origin(base_url: str) -> str:
    """The origin under which the browser reaches a service `serving()` answers at `base_url`."""
    return f"http://{SERVICE_HOST}:{urlsplit(base_url).port}"


@dataclass
class PageWatch:
    """What a page did beyond its origin: requests aborted before they left (`outside`), and
    console errors and uncaught exceptions, CSP refusals among them (`errors`)."""

    origin: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def on_route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            await route.continue_()
        else:
            self.outside.append(url)
            await route.abort("blockedbyclient")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


async def watch(page: Page, origin: str) -> PageWatch:
    """Keeps `page` to `origin` from now on: any other request is aborted and recorded."""
    seen = PageWatch(origin)
    await page.route("**/*", seen.on_route)
    page.on("console", seen.on_console)
    page.on("pageerror", seen.on_page_error)
    return seen
