"""The page in a real browser: headless Chromium (Debian's ``chromium``) with a fake microphone that plays a WAV
file, driven by Playwright (tests/asr/serve/test_page.py, tools/serve_screenshot.py).

Needs the dev extra (``playwright``) and the Debian package ``chromium``; no browser is downloaded. The flags
are the ones known to work on the project's machines (shared/BUILD-NOTES.md): the fake device loops the file,
and without the background-networking flags Chromium keeps trying to reach the network.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def chromium_args(wav: str | Path) -> list[str]:
    """Chromium flags: no sandbox/GPU/network chatter, microphone permission granted, ``wav`` as the microphone."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={Path(wav).resolve()}",
    ]


@contextmanager
def open_page(url: str, wav: str | Path, *, width: int = 1000, height: int = 640) -> Iterator[Any]:
    """A Playwright page showing ``url`` in headless Chromium whose microphone plays ``wav`` (16-bit PCM WAV)."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium (deps/debian-packages.txt)")
    with sync_playwright() as pw:  # Playwright gives the browser a fresh temporary profile
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args(wav))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


def page_state(page) -> dict[str, Any]:
    """The page's ``window.transcurrent`` (finals, partial, latencies, errors, done, closeCode, ...)."""
    return page.evaluate("window.transcurrent")


def wait_until(page, predicate: Callable[[dict[str, Any]], bool], *, timeout: float, poll: float = 0.1) -> dict:
    """Poll the page's state until ``predicate(state)``; the state, or TimeoutError naming what was seen.
    (The page's Content-Security-Policy forbids eval, so Playwright's wait_for_function cannot be used.)"""
    deadline = time.monotonic() + timeout
    while True:
        state = page_state(page)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            brief = {k: state.get(k) for k in ("status", "partial", "errors", "closeCode", "sentSeconds")}
            raise TimeoutError(f"page state not reached in {timeout} s: {brief}, {len(state['finals'])} finals")
        time.sleep(poll)
