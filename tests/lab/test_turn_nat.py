"""Two peers behind symmetric NATs, where no hole can be punched, talk through the
TURN relay of `peerline serve` on the lab's server: each allocates (over UDP, or
TCP), permits the other's relayed address, and data flows both ways, first as
Send/Data indications, then over channels.

The relayed addresses are the server's own (203.0.113.1, a documentation range):
both are denied by default, so the server runs with `--allow-peer` for exactly
that address, as a lab or private deployment would."""

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerline.lab.builtin import pair
from peerline.lab.lab import Lab
from peerline.lab.profiles import parse_nat
from peerline.lab.programs import LabProgram, start_serve
from tests.lab.conftest import built
from tests.support.procs import stop_process

pytestmark = pytest.mark.lab

#: This file's own lab prefix, so its lab never meets another test's.
PREFIX = "plturn-"
SERVER_IP = "203.0.113.1"
TURN_PORT = 3478
USERS = {"alice": "wonderland", "bob": "builder"}
MESSAGES = 20


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    symmetric = parse_nat("symmetric")
    with built(pair(symmetric, symmetric), PREFIX) as lab:
        yield lab


@pytest.fixture(scope="module")
def relay(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProgram]:
    users = [arg for name, pw in USERS.items() for arg in ("--user", f"{name}:{pw}")]
    server = start_serve(
        lab,
        "server",
        [
            "--listen",
            SERVER_IP,
            "--stun-port",
            str(TURN_PORT),
            "--tls-port",
            "0",
            "--sip-port",
            "0",
            "--sip-tls-port",
            "0",
            "--realm",
            "lab.test",
            "--allow-peer",
            f"{SERVER_IP}/32",
            "--state-dir",
            str(tmp_path_factory.mktemp("serve")),
            *users,
        ],
    )
    try:
        assert server.running, server.startup
        yield server
    finally:
        server.stop()


class Peer:
    """`tests.support.turn_peer` running on a lab host: one JSON line each way."""

    def __init__(self, lab: Lab, host: str, user: str, transport: str) -> None:
        argv = [sys.executable, "-m", "tests.support.turn_peer", SERVER_IP, str(TURN_PORT)]
        self.host = host
        self.process: subprocess.Popen[str] = lab.popen(
            host,
            [*argv, user, USERS[user], transport],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=Path(__file__).parent.parent.parent,
        )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the peer bounds each of its own waits
        assert line, f"{self.host}: the TURN peer exited ({self.process.poll()})"
        message: dict[str, Any] = json.loads(line)
        assert "error" not in message, f"{self.host}: {message['error']}"
        return message

    def tell(self, **order: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """Ask it to deallocate and quit; stopped by its pid if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.tell(quit=True)
                self.process.wait(timeout=10)
        stop_process(self.process)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_peers_behind_symmetric_nats_talk_through_the_relay(
    lab: Lab, relay: LabProgram, transport: str
) -> None:
    assert relay.running
    alice = Peer(lab, "peer-a", "alice", transport)
    bob = Peer(lab, "peer-b", "bob", transport)
    try:
        allocated = {peer: peer.read() for peer in (alice, bob)}
        for peer, nat in ((alice, "nat-a"), (bob, "nat-b")):
            assert allocated[peer]["relayed"][0] == SERVER_IP
            assert allocated[peer]["mapped"][0] == lab.address(nat)  # it crossed its NAT
        relayed = {peer: tuple(allocated[peer]["relayed"]) for peer in (alice, bob)}
        for channel in (False, True):  # Send/Data indications first, then channels
            for peer, other in ((alice, bob), (bob, alice)):
                peer.tell(peer=list(relayed[other]), channel=channel)
            for peer in (alice, bob):
                assert peer.read() == {"ready": True}
            tag = "channel" if channel else "indication"
            for peer in (alice, bob):
                peer.tell(send=MESSAGES, tag=f"{tag} from {peer.host}")
            for peer, other in ((alice, bob), (bob, alice)):
                got = peer.read()
                expected = [f"{tag} from {other.host} {i}" for i in range(MESSAGES)]
                assert sorted(got["received"]) == sorted(expected), (peer.host, tag)
                assert {tuple(source) for source in got["sources"]} == {relayed[other]}
    finally:
        alice.stop()
        bob.stop()
