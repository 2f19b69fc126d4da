"""`peerline demo`: the showcase, narrated step by step in the NAT lab.

The demo is a list of steps (`STEPS`); each takes the shared `Demo` and says what it
does as it does it. Later features add steps (register through the supernode, call
through the NATs, ...) between building the lab and tearing it down, which always
happens, Ctrl-C included.
"""

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from peerline.lab import builtin, describe, matrix, proof
from peerline.lab.cli import nat_argument
from peerline.lab.lab import Lab, check_can_build, teardown
from peerline.lab.profiles import NatSpec, Profile
from peerline.lab.programs import PEERLINE, LabProgram, start_serve
from peerline.lab.tools import LabError, has_net_admin

#: The demo's own namespace prefix: it never touches a lab the user has up (`pl-`).
PREFIX = "pld-"
#: The prefix of the scoreboard's labs, built while the demo's own is still up.
MATRIX_PREFIX = "pldm-"


@dataclass
class Demo:
    """What the steps share: where to write, the lab once built, what failed."""

    nat_a: NatSpec
    nat_b: NatSpec
    out: TextIO = field(default_factory=lambda: sys.stdout)
    lab: Lab | None = None
    failed: list[str] = field(default_factory=list)
    step_number: int = 0
    #: Programs the steps started in the lab; stopped before the lab is torn down.
    programs: list[LabProgram] = field(default_factory=list)
    #: Where the supernode and the peers keep their files.
    work: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def heading(self, text: str) -> None:
        self.step_number += 1
        self.say(f"\n{self.step_number}. {text}")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def built(self) -> Lab:
        if self.lab is None:
            raise LabError("the demo's steps ran before the lab was built")
        return self.lab


Step = Callable[[Demo], None]


def build_lab(demo: Demo) -> None:
    demo.heading(
        "Build the lab: namespaces joined by virtual links, with no link to this "
        "machine's own network"
    )
    topology = builtin.pair(demo.nat_a, demo.nat_b)
    started = time.monotonic()
    teardown(PREFIX)  # what an earlier, killed demo may have left
    demo.lab = Lab.up(topology, prefix=PREFIX)
    for line in describe.table(describe.host_rows(topology), indent="   "):
        demo.say(line)
    demo.say(f"   built in {(time.monotonic() - started) * 1000:.0f} ms")


def prove_nats(demo: Demo) -> None:
    lab = demo.built()
    for peer in ("peer-a", "peer-b"):
        nat = lab.nat(peer)
        profile = nat.profile if nat else Profile.NONE
        question = (
            f"Does {lab.nats_in_front(peer)[0].name} behave as {profile}?"
            if nat
            else f"Is {peer}, with no NAT in front, open to all?"
        )
        demo.heading(f"{question} {peer} and the server's three UDP sockets exchange packets")
        for check in proof.check_host(lab, peer):
            demo.say(f"   {'✓' if check.ok else '✗'} {check.label} — {check.detail}")
            if not check.ok:
                demo.failed.append(f"{peer}: {check.label}")


def start_supernode(demo: Demo) -> None:
    lab = demo.built()
    demo.heading(
        "Start a supernode on the server: `peerline serve --listen 203.0.113.1 --alt-ip "
        "203.0.113.2 --user matrix:...` (STUN with RFC 5780 behaviour discovery, and a "
        "TURN relay for the peers ICE cannot join directly)"
    )
    demo.work = Path(tempfile.mkdtemp(prefix="peerline-demo-"))
    server = start_serve(lab, "server", matrix.serve_args(demo.work))
    demo.programs.append(server)
    for line in server.startup:
        if line.startswith("  "):
            demo.say(f"   {line.strip()}")
    if not server.running:
        demo.failed.append(f"the supernode did not start: {' '.join(server.startup[-1:])}")


def classify_nats(demo: Demo) -> None:
    lab = demo.built()
    for peer in ("peer-a", "peer-b"):
        nat = lab.nat(peer)
        demo.heading(f"{peer} classifies its own NAT: `peerline natcheck --server 203.0.113.1`")
        done = lab.run(
            peer, [*PEERLINE, "natcheck", "--server", "203.0.113.1", "--json"], timeout=60
        )
        if done.returncode != 0:
            demo.say(f"   ✗ natcheck failed: {done.stderr.strip().splitlines()[-1:]}")
            demo.failed.append(f"{peer}: natcheck")
            continue
        report = json.loads(done.stdout)
        demo.say(
            f"   public address {report['public_address']}; mapping {report['mapping']}, "
            f"filtering {report['filtering']}"
        )
        demo.say(f"   type: {report['classic_type']}. {report['meaning']}")
        if nat is None:
            continue
        expected = (str(nat.profile.mapping), str(nat.profile.filtering))
        found = (report["mapping"], report["filtering"])
        ok = found == expected
        demo.say(f"   {'✓' if ok else '✗'} natcheck agrees with the lab's {nat.profile} profile")
        if not ok:
            demo.failed.append(f"{peer}: natcheck saw {found}, the profile is {expected}")


def connect_peers(demo: Demo) -> None:
    lab = demo.built()
    demo.heading(
        "Connect peer-a and peer-b: `peerline offer` on peer-a, `peerline answer` on "
        "peer-b (ICE with the supernode's STUN and TURN, then QUIC), 1 MB from a to b"
    )
    result = matrix.Result(a=str(demo.nat_a), b=str(demo.nat_b))
    matrix.transfer(lab, demo.work, 1_000_000, result)
    if not (result.connected and result.verified):
        demo.say(f"   ✗ they did not connect: {result.error}")
        demo.failed.append("peer-a and peer-b did not connect")
        return
    how = "directly" if result.path == "direct" else "through the supernode's relay"
    demo.say(
        f"   connected {how} ({result.local_type} -> {result.remote_type}) in "
        f"{result.setup_ms:.0f} ms; round trip {result.rtt_ms} ms; {result.mbps} Mbit/s"
    )
    demo.say("   ✓ 1,000,000 bytes arrived with the SHA-256 they left with")


#: A few lines of the scoreboard (`peerline lab matrix` runs them all).
SCOREBOARD = (
    "port-restricted-cone:port-restricted-cone",
    "full-cone:symmetric",
    "symmetric:symmetric",
    "cgnat:restricted-cone",
)


def scoreboard(demo: Demo) -> None:
    demo.heading(
        "The scoreboard, in small: a fresh lab per pair of NATs (`peerline lab matrix` "
        "runs every pair)"
    )
    demo.say(f"   {matrix.HEADER}")
    for case in matrix.select_cases(SCOREBOARD):
        result = matrix.run_case(case, size=1_000_000, shape=None, prefix=MATRIX_PREFIX)
        demo.say(f"   {matrix.format_row(result)}")
        if not result.as_expected:
            demo.failed.append(f"scoreboard: {case.label}")


#: The demo, in order. Tearing down is not a step: it always happens after them.
STEPS: list[Step] = [
    build_lab,
    prove_nats,
    start_supernode,
    classify_nats,
    connect_peers,
    scoreboard,
]


def tear_down(demo: Demo) -> None:
    """Remove the lab, with Ctrl-C held off so that a second one cannot interrupt it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for program in demo.programs:
            program.stop()
        removed = teardown(PREFIX)
        teardown(MATRIX_PREFIX)
        if demo.work.name.startswith("peerline-demo-"):
            shutil.rmtree(demo.work, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if demo.lab is not None:
        demo.heading(f"Tear down: removed {len(removed)} namespaces; nothing is left behind")


def explain_cannot_build(demo: Demo, reason: str) -> int:
    demo.say(f"peerline demo cannot build its NAT lab: {reason}.")
    demo.say("It would build these hosts, in network namespaces behind real kernel NATs:")
    topology = builtin.pair(demo.nat_a, demo.nat_b)
    for line in describe.table(describe.host_rows(topology), indent="   "):
        demo.say(line)
    demo.say("What you can do:")
    demo.say("   sudo peerline demo        run it as root (or: sudo bash scripts/demo.sh)")
    demo.say("   peerline lab profiles     the NAT behaviours the lab offers")
    demo.say("   peerline --help           everything else peerline does")
    return 1


def run(args: argparse.Namespace) -> int:
    demo = Demo(args.nat_a, args.nat_b)
    try:
        check_can_build()
    except LabError as error:
        reason = str(error)
        if not has_net_admin():
            reason = "it needs root (CAP_NET_ADMIN) to create network namespaces, and this "
            reason += "process does not have it"
        return explain_cannot_build(demo, reason)
    demo.say(
        f"peerline demo: a public server and two peers behind different NATs "
        f"(peer-a: {demo.nat_a}, peer-b: {demo.nat_b}), on this machine, with the "
        "kernel's own NAT."
    )
    try:
        for step in STEPS:
            step(demo)
    finally:
        tear_down(demo)
    if demo.failed:
        demo.say(f"\n✗ {len(demo.failed)} checks failed: {'; '.join(demo.failed)}")
        return 1
    demo.say(
        "\n✓ Every NAT behaves as its profile says, each peer classified its own NAT, and "
        "the peers connected across them."
    )
    return 0


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build the NAT lab and narrate what happens (needs root)",
        description="Build the NAT lab (needs root), show its hosts and NATs, prove each "
        "NAT behaves as its profile says, start a supernode on the server, let each peer "
        "classify its own NAT with natcheck, connect the two peers across their NATs, "
        "show a small scoreboard of NAT pairs, and tear it all down.",
    )
    parser.add_argument(
        "--nat-a",
        type=nat_argument,
        default=NatSpec(Profile.PORT_RESTRICTED_CONE),
        metavar="PROFILE",
        help="the NAT in front of peer-a (default port-restricted-cone)",
    )
    parser.add_argument(
        "--nat-b",
        type=nat_argument,
        default=NatSpec(Profile.SYMMETRIC),
        metavar="PROFILE",
        help="the NAT in front of peer-b (default symmetric)",
    )
    parser.set_defaults(handler=run)
