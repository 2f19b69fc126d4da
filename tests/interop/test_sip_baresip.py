"""Two baresip phones (Debian `baresip`) register to `peerline serve` with passwords and
one calls the other: the call is set up through the proxy, audio flows both ways,
and it is hung up cleanly, over UDP, TCP and TLS (the server's self-signed
certificate: baresip 1.0 does not verify it). On streams the call reuses the two
connections the phones registered over: the server opens none of its own."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.sip_support import serve_metric, sip_serve
from tests.support.baresip import account, phone, rtp_counts
from tests.support.procs import free_port, require_program

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def sip_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    require_program("baresip", "baresip")
    tmp = tmp_path_factory.mktemp("baresip-serve")
    users = {"alice": "wonderland", "bob": "builder"}
    extra = ["--sip-digest", "MD5"]  # baresip 1.0 (libre) answers MD5 only
    with sip_serve(tmp, users, tls=True, metrics=True, extra=extra) as serve:
        yield {"udp": serve.sip, "tcp": serve.sip, "tls": serve.tls, "metrics": serve.metrics}


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_call_between_two_registered_phones(
    sip_ports: dict[str, int], tmp_path: Path, transport: str
) -> None:
    proxy = f"127.0.0.1:{sip_ports[transport]}"
    with (
        phone(
            tmp_path / "alice",
            listen=f"127.0.0.1:{free_port()}",
            control=free_port(),
            transport=transport,
            interface="127.0.0.1",
        ) as alice,
        phone(
            tmp_path / "bob",
            listen=f"127.0.0.1:{free_port()}",
            control=free_port(),
            transport=transport,
            interface="127.0.0.1",
        ) as bob,
    ):
        alice.command("uanew", account("alice", "wonderland", proxy, transport))
        bob.command("uanew", account("bob", "builder", proxy, transport))
        assert alice.wait_event("REGISTER_OK")["param"].startswith("200")
        assert bob.wait_event("REGISTER_OK")["param"].startswith("200")
        alice.command("dial", "sip:bob@example.test")
        assert alice.wait_event("CALL_ESTABLISHED")["direction"] == "outgoing"
        assert bob.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
        if transport != "udp":  # the call went over the connections the phones opened
            assert serve_metric(sip_ports["metrics"], "peerline_sip_connections") == 2
        time.sleep(1.0)
        for side in (alice, bob):
            sent, received = rtp_counts(side.command("audio_debug")["data"])
            assert sent > 20, f"only {sent} RTP packets sent"
            assert received > 20, f"only {received} RTP packets received"
        alice.command("hangup")
        assert bob.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"  # the BYE
        alice.wait_event("CALL_CLOSED")
