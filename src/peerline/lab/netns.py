"""Named network namespaces: list, create, empty of processes, delete.

Deleting a namespace deletes its links (and their veth peers elsewhere), addresses,
routes, nftables tables and qdiscs with it, so removing every namespace with the
lab's prefix removes everything the lab built: the lab never adds anything to the
root namespace.
"""

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence

from peerline.lab import tools

#: How long processes get to end after SIGTERM before they get SIGKILL.
TERM_GRACE_S = 1.0
#: How long SIGKILLed processes get to disappear.
KILL_WAIT_S = 3.0


def list_namespaces(prefix: str = "") -> list[str]:
    """Names of the named namespaces that start with `prefix`."""
    listing = tools.run(["ip", "netns", "list"], what="listing network namespaces")
    names = (line.split()[0] for line in listing.splitlines() if line.strip())
    return [name for name in names if name.startswith(prefix)]


def add(names: Sequence[str]) -> None:
    batch = "".join(f"netns add {name}\n" for name in names)
    tools.run(["ip", "-batch", "-"], stdin=batch, what="creating namespaces")


def pids(name: str) -> list[int]:
    """The processes whose network namespace is `name`."""
    try:
        listing = tools.run(["ip", "netns", "pids", name], what=f"listing processes in {name}")
    except tools.LabError:
        return []  # already gone
    return [int(word) for word in listing.split() if word.isdigit()]


def end_processes(names: Iterable[str]) -> int:
    """End every process in namespaces `names` (TERM, then KILL); how many there were."""
    found = {pid for name in names for pid in pids(name)} - {os.getpid()}
    if not found:
        return 0
    _signal_all(found, signal.SIGTERM)
    alive = _wait_gone(found, TERM_GRACE_S)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        _wait_gone(alive, KILL_WAIT_S)
    return len(found)


def delete(names: Sequence[str]) -> None:
    if names:
        batch = "".join(f"netns del {name}\n" for name in names)
        tools.run(["ip", "-force", "-batch", "-"], stdin=batch, what="deleting namespaces")


def _signal_all(pids_: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids_:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds no namespace any more)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids_: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = {pid for pid in pids_ if _alive(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = {pid for pid in alive if _alive(pid)}
    return alive
