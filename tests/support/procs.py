"""Start real programs for tests, and always stop them."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

PEERLINE = [sys.executable, "-m", "peerline"]


def require_program(name: str, package: str) -> str:
    """The program's path, or skip the test saying which Debian package provides it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (Debian package {package}; scripts/test.sh installs it)")
    return path


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as check:
            try:
                check.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop_process(process: "subprocess.Popen[str]", grace: float = 5.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    ready: Callable[[], bool] | None = None,
    timeout: float = 15.0,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator["subprocess.Popen[str]"]:
    """Run `argv` for the duration of the block; stopped (TERM, then KILL) on the way out."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        if ready is not None:
            deadline = time.monotonic() + timeout
            while not ready():
                if process.poll() is not None:
                    text = log.read_text() if log else ""
                    raise AssertionError(
                        f"{argv[0]} exited with {process.returncode}: {text[-2000:]}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(f"{argv[0]} not ready after {timeout} s")
                time.sleep(0.05)
        yield process
    finally:
        stop_process(process)
        if log:
            out.close()  # type: ignore[union-attr]
