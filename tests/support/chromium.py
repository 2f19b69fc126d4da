"""Headless Debian Chromium driven by Playwright, kept off the network.

Never a browser download: Playwright launches the system binary through a small
wrapper, because Chromium honours only the last `--disable-features=` switch and
Playwright passes its own; the wrapper merges every one into a single switch so
that ours (no mDNS host names on the real interface) is not lost. The resolver
rules make every name but localhost unresolvable, so Chromium's start-up look-ups
of Google hosts go nowhere.
"""

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"

#: Flags that keep Chromium to loopback (TESTING.md); the wrapper merges the features.
OFFLINE_ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost , "
    "EXCLUDE localhost.",
)

#: Runs the system Chromium with every `--disable-features=` switch merged into one.
WRAPPER = """#!/bin/sh
features=""
for arg in "$@"; do
  shift
  case "$arg" in
    --disable-features=*) features="${features:+$features,}${arg#--disable-features=}" ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec %s ${features:+"--disable-features=$features"} "$@"
"""


def require_chromium() -> None:
    """Skip, saying what is missing, unless Debian's chromium is here."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("needs /usr/bin/chromium (Debian package chromium)")


def wrapper(directory: Path) -> Path:
    """Write the merging wrapper into `directory` and return its path."""
    path = directory / "chromium"
    path.write_text(WRAPPER % CHROMIUM)
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def playwright() -> Iterator[Playwright]:
    """One Playwright driver; every browser of a test module comes from it (the sync API
    allows one driver at a time)."""
    with sync_playwright() as driver:
        yield driver


@contextlib.contextmanager
def browser(
    driver: Playwright, directory: Path, extra_args: Sequence[str] = ()
) -> Iterator[Browser]:
    """A headless Chromium, closed on the way out; its profile lives in `directory`."""
    home = directory / "home"
    home.mkdir(exist_ok=True)
    launched = driver.chromium.launch(
        executable_path=str(wrapper(directory)),
        headless=True,
        args=[*OFFLINE_ARGS, *extra_args],
        env={**os.environ, "HOME": str(home)},
    )
    try:
        yield launched
    finally:
        launched.close()


class _Pages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep test output clean


@contextlib.contextmanager
def serve_pages(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on 127.0.0.1 (a thread); yields the base URL."""

    def handler(*args: object) -> _Pages:
        return _Pages(*args, directory=str(directory))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def copy_page(source: Path, directory: Path) -> None:
    """Put a page next to nothing else, so the HTTP server exposes only it."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, directory / source.name)
