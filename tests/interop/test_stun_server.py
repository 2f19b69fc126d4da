"""`peerline serve` on loopback: real clients over UDP, TCP, TLS and IPv6; floods of
garbage and half-open connections; clean stops; one-line errors."""

import json
import random
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerline.stun import MessageBuilder, MessageClass, Method, parse
from peerline.supernode.stun_service import stun_framer
from tests.support.procs import PEERLINE, free_port, require_program, running

pytestmark = pytest.mark.interop


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class Server:
    def __init__(self, process: "subprocess.Popen[str]", port: int, tls_port: int) -> None:
        self.process = process
        self.port = port
        self.tls_port = tls_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    port, tls_port = free_port(), free_port(socket.SOCK_STREAM)
    listen = ["--listen", "127.0.0.1"] + (["--listen", "::1"] if has_ipv6_loopback() else [])
    log = tmp / "serve.log"
    argv = [
        *PEERLINE,
        "serve",
        *listen,
        "--stun-port",
        str(port),
        "--tls-port",
        str(tls_port),
        "--rate",
        "0",
        "--state-dir",
        str(tmp),
    ]
    with running(argv, ready=lambda: "serving" in log.read_text(), log=log) as process:
        yield Server(process, port, tls_port)


def binding_over_udp(
    address: tuple[str, int], family: int = socket.AF_INET
) -> tuple[object, object]:
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.bind((address[0], 0))
        client.sendto(MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode(), address)
        response = parse(client.recv(2048))
        return response.xor_mapped_address, client.getsockname()[:2]


def test_turnutils_stunclient_gets_its_address(server: Server) -> None:
    require_program("turnutils_stunclient", "coturn")
    done = subprocess.run(
        ["turnutils_stunclient", "-p", str(server.port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", done.stdout), done.stdout


def test_udp_ipv4_and_ipv6(server: Server) -> None:
    mapped, local = binding_over_udp(("127.0.0.1", server.port))
    assert mapped == local
    if has_ipv6_loopback():
        mapped, local = binding_over_udp(("::1", server.port), socket.AF_INET6)
        assert mapped == local


def test_tcp_and_tls(server: Server) -> None:
    request = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode(fingerprint=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as tcp:
        tcp.sendall(request[:7])  # in pieces: the server must frame the stream
        time.sleep(0.05)
        tcp.sendall(request[7:] + request)
        data = b""
        while stun_framer(bytearray(data)) <= 0 or len(data) < 2 * stun_framer(bytearray(data)):
            data += tcp.recv(4096)
        size = stun_framer(bytearray(data))
        for answer in (data[:size], data[size:]):
            assert parse(answer).xor_mapped_address == tcp.getsockname()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server made itself a self-signed certificate
    with (
        socket.create_connection(("127.0.0.1", server.tls_port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(request)
        assert parse(tls.recv(4096)).xor_mapped_address == tls.getsockname()


def garbage(rng: random.Random) -> list[bytes]:
    """A pool of hostile datagrams: random bytes, truncated and lying STUN messages."""
    valid = (
        MessageBuilder(Method.BINDING, MessageClass.REQUEST)
        .add(0x8022, b"x" * 40)
        .encode(fingerprint=True)
    )
    pool = [rng.randbytes(rng.randrange(0, 600)) for _ in range(400)]
    pool += [valid[: rng.randrange(0, len(valid))] for _ in range(200)]
    for _ in range(200):
        lie = bytearray(valid)
        lie[2:4] = rng.randrange(0, 65536).to_bytes(2, "big")
        lie[rng.randrange(20, len(lie))] ^= 0xFF
        pool.append(bytes(lie))
    return pool


def test_flood_of_garbage_keeps_memory_flat_and_answers(server: Server) -> None:
    rng = random.Random(5780)
    pool = garbage(rng)
    target = ("127.0.0.1", server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.setblocking(False)
        for datagram in pool * 10:  # warm up: let the allocator settle
            try:
                flood.sendto(datagram, target)
            except BlockingIOError:
                time.sleep(0.001)
        time.sleep(0.5)
        before = rss_kib(server.process.pid)
        sent, deadline = 0, time.monotonic() + 60
        while sent < 1_000_000 and time.monotonic() < deadline:
            try:
                flood.sendto(pool[sent % len(pool)], target)
                sent += 1
            except BlockingIOError:
                time.sleep(0.0005)
    time.sleep(1.0)
    assert server.process.poll() is None
    mapped, local = binding_over_udp(target)
    assert mapped == local
    grown = rss_kib(server.process.pid) - before
    assert sent == 1_000_000
    assert grown < 4096, f"RSS grew by {grown} KiB over a million garbage datagrams"


def test_half_open_and_garbage_connections(server: Server) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=2) for _ in range(200)]
    try:
        for connection in idle[:100]:
            connection.sendall(b"\x00\x01\x00")  # a header that never completes
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as junk:
            junk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert junk.recv(100) == b""  # not STUN: the server hangs up
        mapped, local = binding_over_udp(("127.0.0.1", server.port))
        assert mapped == local
    finally:
        for connection in idle:
            connection.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *PEERLINE,
            "serve",
            "--listen",
            "127.0.0.1",
            "--stun-port",
            str(port),
            "--tls-port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for _ in range(20):
        lines.append(process.stdout.readline())
        if "serving" in lines[-1]:
            break
    assert any(f"udp  127.0.0.1:{port}" in line for line in lines), lines
    process.send_signal(signum)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def serve_refuses(tmp_path: Path, args: list[str], port: int) -> str:
    """Run `peerline serve ARGS`, which must refuse with one line and exit 2; that line."""
    done = subprocess.run(
        [
            *PEERLINE,
            "serve",
            *args,
            "--stun-port",
            str(port),
            "--tls-port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nonsense"], "not an IP address"),
        (["--listen", "127.0.0.1", "--alt-ip", "::2"], "same family"),
        (["--listen", "192.0.2.77"], "cannot listen"),
        (["--config", "/nonexistent.toml"], "cannot read configuration file"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    assert message in serve_refuses(tmp_path, args, free_port())


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        error = serve_refuses(tmp_path, ["--listen", "127.0.0.1"], taken.getsockname()[1])
    assert "cannot listen on udp 127.0.0.1" in error


def test_natcheck_over_ipv6_and_one_address(server: Server) -> None:
    if not has_ipv6_loopback():
        pytest.skip("needs an IPv6 loopback address (::1)")
    done = subprocess.run(
        [*PEERLINE, "natcheck", "--server", f"[::1]:{server.port}", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["udp"] is True
    assert report["nat"] is False
    assert report["public_address"].startswith("[::1]:")
    assert report["mapping"] == "endpoint-independent"  # no NAT: nothing translates
    assert report["filtering"] is None  # one address: the filtering tests cannot run
    assert report["skipped"]
