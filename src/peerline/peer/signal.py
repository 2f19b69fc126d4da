"""How an offer and an answer cross between two people: pasted, or through files.

peerline needs no server to introduce two peers: one prints an offer, the other
pastes it and prints an answer, the first pastes that. Scripts (and the lab
matrix) use files instead, and `peerline connect DIR` lets both sides run the
same command against one shared directory: whoever comes first offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from peerline.errors import PeerlineError, UsageError
from peerline.peer.description import Kind, PeerDescription
from peerline.peer.terminal import ThreadedReader
from peerline.session.blob import PREFIX

_POLL = 0.05
_MAX_PASTE_LINES = 200

Send = Callable[[PeerDescription], Awaitable[None]]
Receive = Callable[[Kind], Awaitable[PeerDescription]]


class SignalTimeoutError(PeerlineError):
    """The other side's offer or answer did not come in time."""


def print_blob(stream: TextIO, description: PeerDescription, hint: str) -> None:
    """The blob on a line of its own, between two lines that say what to do with it."""
    stream.write(f"peerline: your {description.kind.value} ({hint}):\n\n")
    stream.write(description.to_blob() + "\n\n")
    stream.flush()


async def paste(reader: ThreadedReader, expect: Kind, prompt: TextIO) -> PeerDescription:
    """Read pasted lines until they make a whole description (a wrapped paste too)."""
    prompt.write(f"peerline: paste the {expect.value} from the other side, then Enter:\n")
    prompt.flush()
    collected = ""
    for _ in range(_MAX_PASTE_LINES):
        line = (await reader.readline()).decode(errors="replace")
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if not collected and PREFIX not in text:
            prompt.write(f"peerline: that is not a peerline {expect.value}; paste again:\n")
            prompt.flush()
            continue
        collected += text[text.index(PREFIX) :] if not collected else text
        try:
            return PeerDescription.from_blob(collected, expect=expect)
        except UsageError as error:
            if "incomplete" not in str(error) and "damaged" not in str(error):
                raise
    raise UsageError(f"no {expect.value} was pasted")


def write_file(path: Path, description: PeerDescription) -> None:
    """Write the blob so that a reader never sees half of it (write, then rename)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(description.to_blob() + "\n")
    partial.replace(path)


async def wait_for_file(path: Path, expect: Kind) -> PeerDescription:
    """Poll for `path` and read the description in it. It polls until cancelled: the
    caller bounds the wait (`establish` does, for every way a description travels)."""
    while True:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text.strip():
                return PeerDescription.from_blob(text, expect=expect)
        await asyncio.sleep(_POLL)


def claim_offer(directory: Path, stale_after: float) -> bool:
    """`peerline connect DIR`: True if this side offers (it made DIR/offer.lock first).

    A lock older than `stale_after` seconds is a crashed run's and is taken over.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use {directory} to meet the peer: {error.strerror}") from None
    lock = directory / "offer.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - lock.stat().st_mtime > stale_after:
                    lock.unlink()
                    for name in ("offer", "answer"):
                        (directory / name).unlink(missing_ok=True)
                    continue
            return False
        except OSError as error:
            raise UsageError(f"cannot use {directory} to meet the peer: {error.strerror}") from None
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        for name in ("offer", "answer"):
            (directory / name).unlink(missing_ok=True)
        return True
    return False


def release_offer(directory: Path) -> None:
    """The offerer's clean-up once connected (or given up): the next run starts fresh."""
    for name in ("offer", "answer", "offer.lock"):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
