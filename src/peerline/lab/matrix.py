"""The scoreboard: every pair of NAT profiles, connected by `peerline offer`/`answer`.

For each case a fresh lab is built (the `pair` topology with the two profiles, or
`same-nat`, or `cgnat`), a supernode (STUN with RFC 5780, TURN) runs on `server`,
peer-a offers and sends a block of random bytes, peer-b answers and writes what
it gets to a file; the digest of that file is checked here, independently of
what the peers report. The result says whether they connected, over which path
(direct or relayed, and the candidate types), how long setup took and how fast
the data went.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peerline.errors import UsageError
from peerline.lab import builtin
from peerline.lab.lab import Lab, teardown
from peerline.lab.profiles import LinkShape, Profile, parse_nat
from peerline.lab.programs import PEERLINE, start_serve
from peerline.lab.topology import Topology

PREFIX = "plm-"
"""The matrix's own lab prefix: it never meets a lab the user has up."""

PROFILES = tuple(profile.value for profile in Profile)
TURN_USER, TURN_PASSWORD = "matrix", "matrix-secret"
SERVER_IP, SERVER_ALT_IP = "203.0.113.1", "203.0.113.2"
PEER_TIMEOUT_S = 45.0
"""How long either peer may take, from its start to its end, before it is killed."""


@dataclass(frozen=True, slots=True)
class Case:
    """One line of the matrix: `a` and `b` are the NATs (or the topology's name)."""

    a: str
    b: str
    build: Callable[[], Topology] = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.a} x {self.b}"

    @property
    def direct_expected(self) -> bool | None:
        """True: must connect directly; False: needs the relay; None: either is right
        (a symmetric NAT facing a port-restricted one: the birthday technique may win)."""
        ends = {self.a, self.b}
        if ends == {"symmetric"}:
            return False
        if "symmetric" in ends and ends & {"port-restricted-cone", "cgnat"}:
            return None
        return True


def _pair_case(a: str, b: str) -> Case:
    return Case(a, b, lambda: builtin.pair(parse_nat(a), parse_nat(b)))


def _same_nat_case(nat: str) -> Case:
    return Case("same-nat", nat, lambda: builtin.same_nat(parse_nat(nat)))


def _cgnat_case(b: str) -> Case:
    return Case("cgnat", b, lambda: builtin.cgnat(nat_b=parse_nat(b)))


def all_cases() -> list[Case]:
    """Every unordered pair of profiles, same-nat with and without hairpin, cgnat x each."""
    cases = [_pair_case(a, b) for i, a in enumerate(PROFILES) for b in PROFILES[i:]]
    cases += [
        _same_nat_case("port-restricted-cone"),
        _same_nat_case("port-restricted-cone,hairpin"),
    ]
    cases += [_cgnat_case(b) for b in PROFILES]
    return cases


def select_cases(only: Sequence[str]) -> list[Case]:
    """The cases named `A:B` (either order; `same-nat:PROFILE`, `cgnat:PROFILE`), or all."""
    cases = all_cases()
    if not only:
        return cases
    chosen = []
    for wanted in only:
        a, colon, b = wanted.partition(":")
        match = next(
            (c for c in cases if colon and ((c.a, c.b) == (a, b) or (c.a, c.b) == (b, a))), None
        )
        if match is None:
            raise UsageError(
                f"no matrix case {wanted!r}: use A:B with A, B among {', '.join(PROFILES)}, "
                "or same-nat:PROFILE[,hairpin], or cgnat:PROFILE"
            )
        chosen.append(match)
    return chosen


@dataclass(slots=True, kw_only=True)
class Result:
    """One case's outcome; `as_json` is what `--json` prints for it."""

    a: str
    b: str
    connected: bool = False
    path: str | None = None
    local_type: str | None = None
    remote_type: str | None = None
    setup_ms: float | None = None
    rtt_ms: float | None = None
    mbps: float | None = None
    verified: bool = False
    bytes: int = 0
    error: str | None = None
    direct_expected: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def as_expected(self) -> bool:
        """Connected, verified, and direct when it must be (relayed when it must be)."""
        if not (self.connected and self.verified):
            return False
        if self.direct_expected is None:
            return True
        return (self.path == "direct") == self.direct_expected


def serve_args(state: Path) -> list[str]:
    """The supernode: relaying to the lab's Internet (a documentation range, denied by
    default), with no per-allocation bandwidth cap so relayed throughput is the relay's."""
    return [
        "--listen", SERVER_IP, "--alt-ip", SERVER_ALT_IP, "--tls-port", "0",
        "--sip-port", "0", "--sip-tls-port", "0", "--rate", "0", "--state-dir", str(state),
        "--realm", "lab", "--user", f"{TURN_USER}:{TURN_PASSWORD}",
        "--allow-peer", "203.0.113.0/24", "--turn-bandwidth", "0",
    ]  # fmt: skip


def _peer_args(role: str, work: Path) -> list[str]:
    files = (
        ["--offer-to", str(work / "offer"), "--answer-from", str(work / "answer")]
        if role == "offer"
        else ["--offer-from", str(work / "offer"), "--answer-to", str(work / "answer")]
    )
    return [
        *PEERLINE, role, "--stun", SERVER_IP,
        "--turn", f"turn:{TURN_USER}:{TURN_PASSWORD}@{SERVER_IP}", "--no-ipv6",
        "--timeout", "30", "--quiet", "--report", str(work / f"{role}.json"), *files,
    ]  # fmt: skip


def run_case(case: Case, *, size: int, shape: LinkShape | None, prefix: str = PREFIX) -> Result:
    """Build the case's lab, connect its two peers, move `size` bytes, tear it all down."""
    result = Result(a=case.a, b=case.b, direct_expected=case.direct_expected)
    topology = case.build()
    if shape is not None and shape.is_shaped:
        topology = topology.with_access_links(shape)
    teardown(prefix)
    with tempfile.TemporaryDirectory(prefix="peerline-matrix-") as tmp:
        work = Path(tmp)
        with Lab.up(topology, prefix=prefix) as lab:
            serve = start_serve(lab, "server", serve_args(work))
            try:
                if not serve.running:
                    result.error = "the supernode did not start: " + " ".join(serve.startup[-3:])
                    return result
                transfer(lab, work, size, result)
            finally:
                serve.stop()
    return result


def transfer(lab: Lab, work: Path, size: int, result: Result) -> None:
    """peer-a offers and sends `size` random bytes, peer-b answers; fills in `result`.

    The lab must have the supernode of `serve_args` running on `server`.
    """
    data = work / "data"
    data.write_bytes(os.urandom(size))
    want = hashlib.sha256(data.read_bytes()).hexdigest()
    _run_peers(lab, work, data)
    _read_reports(work, want, result)


def _run_peers(lab: Lab, work: Path, data: Path) -> None:
    received = work / "received"
    with data.open("rb") as source, received.open("wb") as sink:
        errors = {role: (work / f"{role}.err").open("wb") for role in ("offer", "answer")}
        try:
            offerer = lab.popen(
                "peer-a", _peer_args("offer", work), stdin=source, stdout=subprocess.DEVNULL,
                stderr=errors["offer"],
            )  # fmt: skip
            answerer = lab.popen(
                "peer-b", _peer_args("answer", work), stdin=subprocess.DEVNULL, stdout=sink,
                stderr=errors["answer"],
            )  # fmt: skip
            deadline = time.monotonic() + PEER_TIMEOUT_S
            for process in (offerer, answerer):
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        finally:
            for stream in errors.values():
                stream.close()


def _read_reports(work: Path, want: str, result: Result) -> None:
    reports = {}
    for role in ("offer", "answer"):
        try:
            reports[role] = json.loads((work / f"{role}.json").read_text())
        except (OSError, ValueError):
            reports[role] = {}
    offer, answer = reports["offer"], reports["answer"]
    result.connected = bool(offer.get("connected") and answer.get("connected"))
    for key in ("path", "local_type", "remote_type", "setup_ms", "rtt_ms"):
        setattr(result, key, offer.get(key))
    mbps = answer.get("receive_mbps")
    result.mbps = None if mbps is None else round(mbps, 1)
    received = (work / "received").read_bytes()
    result.bytes = len(received)
    result.verified = hashlib.sha256(received).hexdigest() == want
    errors = [reports[role].get("error") or _last_line(work / f"{role}.err") for role in reports]
    problems = [f"{role}: {text}" for role, text in zip(reports, errors, strict=True) if text]
    if problems and not (result.connected and result.verified):
        result.error = "; ".join(problems)


def _last_line(path: Path) -> str | None:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def run_matrix(
    cases: Iterable[Case],
    *,
    size: int,
    shape: LinkShape | None = None,
    prefix: str = PREFIX,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    results = []
    for case in cases:
        result = run_case(case, size=size, shape=shape, prefix=prefix)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def format_row(result: Result) -> str:
    types = f"{result.local_type}/{result.remote_type}" if result.connected else "-"
    setup = f"{result.setup_ms:.0f} ms" if result.setup_ms is not None else "-"
    mbps = f"{result.mbps:.1f}" if result.mbps is not None else "-"
    verdict = "ok" if result.as_expected else ("FAILED" if not result.connected else "UNEXPECTED")
    line = (
        f"{result.a:22} {result.b:30} {result.path or '-':7} {types:12} {setup:>9} "
        f"{mbps:>7}  {'yes' if result.verified else 'no':8} {verdict}"
    )
    return line + (f"  ({result.error})" if result.error and not result.as_expected else "")


HEADER = (
    f"{'a':22} {'b':30} {'path':7} {'types':12} {'setup':>9} {'Mbit/s':>7}  {'verified':8} outcome"
)
