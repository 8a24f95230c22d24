"""A real `medrec serve` process and a real headless Chromium for the browser tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets

from app.settings import Settings
from tests.browser.cdp import CHROMIUM, Browser, Page, chromium
from tests.servers import server_environment, serving


@pytest.fixture(scope="module")
def origin(settings: Settings) -> Iterator[str]:
    """The origin of a `medrec serve` process, as production runs it."""
    with serving(server_environment(settings)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's chromium. Missing, it skips the test locally but fails it in CI (`CI` set)."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = (
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(apt-get install --no-install-recommends chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run them (.ci/run installs it)")
        pytest.skip(reason)
    with chromium() as running:
        yield running


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """The browser's tab, recording network, console and log events from the start."""
    async with websockets.connect(browser.page_ws_url, max_size=None) as connection:
        tab = Page(connection)
        try:
            for domain in ("Network", "Page", "Runtime", "Log"):
                await tab.send(f"{domain}.enable")
            # DevTools scripts are not subject to the page's CSP: record its violations.
            await tab.send(
                "Page.addScriptToEvaluateOnNewDocument",
                source="""
                    window.__cspViolations = [];
                    document.addEventListener("securitypolicyviolation", (event) => {
                        window.__cspViolations.push(
                            event.violatedDirective + " " + (event.blockedURI || "inline")
                        );
                    });
                """,
            )
            yield tab
        finally:
            await tab.close()
