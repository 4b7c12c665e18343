"""Headless Chromium for the browser tests, driven by Playwright's async API.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``), never one that Playwright downloads:
``.ci/install-browser`` installs it and Playwright. Playwright talks to it from the test's own
event loop, the one the servers under test run in, so nothing here may block that loop.

Screenshots go to ``test-artifacts/browser/`` (gitignored), under stable names, so a CI run or a
developer can look at what a person would have seen; a failing test leaves
``failure-<test>.png`` and ``failure-<test>.html`` there too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")

#: As root there is no user namespace sandbox, hence --no-sandbox; the rest keeps Chromium from
#: phoning home (the tests must only ever reach 127.0.0.1).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The size screenshots are taken at (docs/images/ holds copies of them).
VIEWPORT = {"width": 960, "height": 640}

#: Per action and per expectation: a local page that takes longer is broken, not slow.
TIMEOUT_MS = 10_000


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    problems = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"{CHROMIUM} is missing")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed")
    if not problems:
        return None
    return (
        f"{' and '.join(problems)}: run `.ci/install-browser` (it installs Debian's chromium "
        "and Playwright into .venv; never `playwright install`)"
    )


def require_browser() -> None:
    """Fail (under CI, where a skipped browser test would hide a missing install) or skip."""
    problem = browser_missing()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


def artifact(name: str) -> Path:
    return ARTIFACTS / name


def clear_artifacts(test: str, *names: str) -> None:
    """Make the artifact folder and remove the files of ``test`` from an earlier run, so that a
    file there is always from the latest run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in (*names, f"failure-{test}.png", f"failure-{test}.html"):
        artifact(name).unlink(missing_ok=True)


@asynccontextmanager
async def chromium_page(test: str) -> AsyncIterator[Page]:
    """A fresh page in a fresh headless Chromium; on an exception inside the block, the page as
    it was is saved as ``failure-<test>.png`` and ``.html`` before the browser closes."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(TIMEOUT_MS)
            context.set_default_navigation_timeout(TIMEOUT_MS)
            page = await context.new_page()
            try:
                yield page
            except BaseException:
                await _save_failure(page, test)
                raise
        finally:
            await browser.close()


async def _save_failure(page: Page, test: str) -> None:
    try:
        await page.screenshot(path=artifact(f"failure-{test}.png"), full_page=True)
        content = await page.content()
    except Exception:  # the page may be gone; the original error matters more
        return
    artifact(f"failure-{test}.html").write_text(f"<!-- {page.url} -->\n{content}")
