"""Phones behind real NATs reach each other through the supernode's registrar and proxy:
a baresip behind a symmetric NAT (with SIP Outbound) and one behind a port-restricted
cone (plain rport) register to `peerline serve` on `server` and call each other over
the flows they opened. Media is not expected to pass these NATs (that is ICE's job)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerline.lab.lab import Lab
from peerline.lab.programs import start_serve
from tests.lab.conftest import built, side_by_side
from tests.support.baresip import Phone, account, phone
from tests.support.procs import require_program

pytestmark = pytest.mark.lab

SERVER_IP = "203.0.113.1"
#: This file's own lab prefix, so its lab never meets another test file's.
PREFIX = "plsip-"
USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_program("baresip", "baresip")
    with built(side_by_side("sip", ["symmetric", "port-restricted-cone"]), PREFIX) as lab:
        yield lab


def in_lab(lab: Lab, host: str, directory: Path) -> "contextlib.AbstractContextManager[Phone]":
    """A baresip on `host`, its control port on that host's own loopback."""
    return phone(
        directory,
        listen=f"{lab.address(host)}:5060",
        control=4444,
        prefix=lab.command(host, []),
        namespace=lab.namespace(host),
    )


def test_phones_behind_symmetric_and_port_restricted_nats_call_each_other(
    lab: Lab, tmp_path: Path
) -> None:
    users = [arg for name, pw in USERS.items() for arg in ("--user", f"{name}:{pw}")]
    server = start_serve(
        lab,
        "server",
        [
            "--listen",
            SERVER_IP,
            "--tls-port",
            "0",
            "--sip-tls-port",
            "0",
            "--domain",
            "example.test",
            "--sip-digest",
            "MD5",
            "--state-dir",
            str(tmp_path / "serve"),
            *users,
        ],
    )
    assert server.running, server.startup
    proxy = f"{SERVER_IP}:5060"
    try:
        with (
            in_lab(lab, "peer-1", tmp_path / "alice") as alice,
            in_lab(lab, "peer-2", tmp_path / "bob") as bob,
        ):
            alice.command(
                "uanew", account("alice", USERS["alice"], proxy, "udp", ";sipnat=outbound")
            )
            bob.command("uanew", account("bob", USERS["bob"], proxy, "udp"))
            assert alice.wait_event("REGISTER_OK")["param"].startswith("200")
            assert bob.wait_event("REGISTER_OK")["param"].startswith("200")
            for caller, callee, name in ((alice, bob, "bob"), (bob, alice, "alice")):
                caller.command("dial", f"sip:{name}@example.test")
                assert caller.wait_event("CALL_ESTABLISHED")["direction"] == "outgoing"
                assert callee.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
                callee.command("hangup")  # the BYE crosses the NATs the other way
                caller.wait_event("CALL_CLOSED")
                callee.wait_event("CALL_CLOSED")
    finally:
        server.stop()
