"""The SIP ports of `peerline serve` on loopback: keepalives (RFC 5626 §4.4: STUN on
the UDP port, asked by coturn's turnutils_stunclient; CRLF ping and pong on TCP),
the WebSocket handshake's subprotocol check (RFC 7118), and streams that lose their
framing closed without harm to the others."""

import re
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.interop.sip_support import SipServe, sip_serve
from tests.support.procs import require_program

pytestmark = pytest.mark.interop

OPTIONS = (
    "OPTIONS sip:example.test SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-{n}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:probe@other.test>;tag=p{n}\r\n"
    "To: <sip:example.test>\r\n"
    "Call-ID: transports-{n}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServe]:
    tmp = tmp_path_factory.mktemp("sip-transports")
    with sip_serve(tmp, {"alice": "wonderland"}, ws=True) as serve:
        yield serve


def read_until(conn: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_stun_keepalive_on_the_sip_udp_port_reflects_the_phone(ports: SipServe) -> None:
    require_program("turnutils_stunclient", "coturn")
    done = subprocess.run(
        ["turnutils_stunclient", "-p", str(ports.sip), "-L", "127.0.0.1", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", done.stdout), done.stdout


def test_crlf_ping_on_tcp_gets_a_pong_and_the_connection_stays_usable(ports: SipServe) -> None:
    with socket.create_connection(("127.0.0.1", ports.sip), timeout=5) as conn:
        conn.sendall(b"\r\n\r\n")
        assert conn.recv(16) == b"\r\n"  # RFC 5626 §4.4.1: the pong is one CRLF
        conn.sendall(OPTIONS.format(n=1).encode())
        assert read_until(conn, b"\r\n\r\n").startswith(b"SIP/2.0 200 OK\r\n")
        conn.sendall(b"\r\n\r\n")
        assert conn.recv(16) == b"\r\n"


def test_a_stream_that_loses_its_framing_is_closed_and_others_go_on(ports: SipServe) -> None:
    with socket.create_connection(("127.0.0.1", ports.sip), timeout=5) as broken:
        broken.sendall(
            OPTIONS.format(n=2).replace("Content-Length: 0", "Content-Length: x").encode()
        )
        assert broken.recv(4096) == b""  # closed: where the next message starts is unknowable
    with socket.create_connection(("127.0.0.1", ports.sip), timeout=5) as conn:
        conn.sendall(OPTIONS.format(n=3).encode())
        assert read_until(conn, b"\r\n\r\n").startswith(b"SIP/2.0 200 OK\r\n")


def _upgrade(protocol: str) -> bytes:
    return (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    ).encode()


def test_websocket_handshake_needs_the_sip_subprotocol(ports: SipServe) -> None:
    with socket.create_connection(("127.0.0.1", ports.ws), timeout=5) as conn:
        conn.sendall(_upgrade("chat"))
        assert read_until(conn, b"\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", ports.ws), timeout=5) as conn:
        conn.sendall(_upgrade("sip"))
        head = read_until(conn, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"sec-websocket-protocol: sip" in head.lower()
