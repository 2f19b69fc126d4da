"""The running lab's description on disk, so `status`, `exec` and `down` work from any
process: /run/peerline/lab-PREFIX.json (tmpfs: a reboot, which also ends every
namespace, forgets it), written whole or not at all, and a lock serialising `up`/`down`.
"""

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peerline.errors import UsageError
from peerline.lab.tools import LabError
from peerline.lab.topofile import from_dict, to_dict
from peerline.lab.topology import Topology

STATE_DIR = Path("/run/peerline")
#: Lowercase letters and digits, ending in '-': `pl-` cannot be a prefix of `plt-`.
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}-")
_FORMAT = 1
_LOCK_WAIT_S = 60.0


def check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(
            f"bad lab prefix {prefix!r}: 1-8 lowercase letters or digits, then '-' (like pl-)"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class LabState:
    prefix: str
    topology: Topology
    #: When the lab was built (seconds since the epoch).
    created: float


def state_path(prefix: str, directory: Path = STATE_DIR) -> Path:
    return directory / f"lab-{check_prefix(prefix).rstrip('-')}.json"


def save(state: LabState, directory: Path = STATE_DIR) -> None:
    path = state_path(state.prefix, directory)
    document = {
        "format": _FORMAT,
        "prefix": state.prefix,
        "created": state.created,
        "topology": to_dict(state.topology),
    }
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.chmod(0o644)  # `peerline lab status` needs no root
    partial.replace(path)


def load(prefix: str, directory: Path = STATE_DIR) -> LabState | None:
    """The lab with `prefix` as last saved, or None when there is none."""
    path = state_path(prefix, directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _unreadable(path, error) from None
    try:
        return _parse(text, prefix)
    except (ValueError, KeyError, TypeError, AttributeError, UsageError) as error:
        raise _unreadable(path, error) from None


def _parse(text: str, prefix: str) -> LabState:
    document: Any = json.loads(text)
    if document.get("format") != _FORMAT or document.get("prefix") != prefix:
        raise ValueError(f"not a format-{_FORMAT} state of prefix {prefix}")
    return LabState(prefix, from_dict(document["topology"]), float(document["created"]))


def _unreadable(path: Path, error: Exception) -> LabError:
    return LabError(
        f"the lab's state file {path} is unreadable ({error}); `peerline lab down` removes it"
    )


def remove(prefix: str, directory: Path = STATE_DIR) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(prefix, directory).unlink()


@contextlib.contextmanager
def locked(prefix: str, directory: Path = STATE_DIR) -> Iterator[None]:
    """Hold the lab's lock: one `up` or `down` per prefix at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lab-{check_prefix(prefix).rstrip('-')}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"another peerline is building or removing the lab {prefix} "
                        f"(lock {path} held for {_LOCK_WAIT_S:g} s)"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(descriptor)
