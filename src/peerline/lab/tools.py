"""Running the kernel's tools (`ip`, `nft`, `tc`, `sysctl`): bounded in time, one-line errors."""

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from peerline.errors import PeerlineError

#: Where each tool comes from on Debian, for the message when it is missing.
PACKAGES = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables", "sysctl": "procps"}
#: How long one tool call may take; building a namespace takes milliseconds.
TIMEOUT_S = 20.0
#: CAP_NET_ADMIN's bit in /proc/PID/status CapEff.
_CAP_NET_ADMIN = 12


class LabError(PeerlineError):
    """The lab could not be built, inspected or removed; the message says why."""


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = TIMEOUT_S,
    what: str | None = None,
) -> str:
    """Run a tool to completion and return its output; any failure is one LabError line
    naming `what` was being done (default: the command itself)."""
    label = what or " ".join(argv[:4])
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise missing_tool(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{label}: no answer within {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        detail = " / ".join(lines[:3]) or f"exit code {done.returncode}"
        raise LabError(f"{label} failed: {detail}")
    return done.stdout


def missing_tool(name: str) -> LabError:
    package = PACKAGES.get(name, name)
    return LabError(
        f"the NAT lab needs `{name}` (Debian package {package}), which is not installed"
    )


def require_tools(names: Sequence[str] = ("ip", "nft", "sysctl")) -> None:
    for name in names:
        if shutil.which(name) is None:
            raise missing_tool(name)


def has_net_admin(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this process may create namespaces and links (CAP_NET_ADMIN in effect)."""
    try:
        text = status.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    return False


def require_net_admin() -> None:
    if not has_net_admin():
        raise LabError(
            "the NAT lab needs root (CAP_NET_ADMIN) to create network namespaces: "
            "run it as root, e.g. with sudo"
        )
