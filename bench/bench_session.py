"""Bulk throughput of a peerline session against stock aioquic, on loopback, same run.

    .venv/bin/python bench/bench_session.py [--megabytes 20] [--runs 3]

Each run moves `--megabytes` over one QUIC stream between two processes on
127.0.0.1, once with peerline's PeerSession (pinned fingerprints, our adapter,
our flow control and backpressure) and once with aioquic's own asyncio client
and server (no pinning, its adapter), both with the same datagram size (1200),
congestion control (CUBIC) and initial windows. The receiver times from the first
to the last byte. It prints each run and the ratio of the medians
(peerline / aioquic): what the session layer costs over the QUIC stack it drives.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.procs

from tests.support.procs import free_port, stop_process  # noqa: E402

from peerline.session.identity import Identity  # noqa: E402

WORKER = r"""
import asyncio, os, ssl, sys, time
from pathlib import Path
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration
from peerline import aio
from peerline.session.config import SessionConfig, SessionRole
from peerline.session.identity import Identity
from peerline.session.quic import PeerSession
from peerline.session.udp import UdpPath

kind, role, port, peer_port, state, peer_state, size = sys.argv[1:8]
port, peer_port, size = int(port), int(peer_port), int(size)
me, peer = Identity.load_or_create(Path(state)), Identity.load_or_create(Path(peer_state))
CHUNK = os.urandom(256 * 1024)
CFG = SessionConfig()

async def send(writer):
    sent = 0
    while sent < size:
        writer.write(CHUNK)
        await writer.drain()
        sent += len(CHUNK)
    writer.write_eof()

async def receive(reader):
    got, started = 0, None
    while chunk := await reader.read(256 * 1024):
        started = started or time.perf_counter()
        got += len(chunk)
    print(f"{got * 8 / (time.perf_counter() - started) / 1e6:.1f}", flush=True)

async def peerline():
    path = await UdpPath.open(("127.0.0.1", port), ("127.0.0.1", peer_port))
    session = PeerSession(path, role=SessionRole(role), identity=me,
                          peer_fingerprint=peer.fingerprint)
    path.listener = session
    await session.connect(20)
    if role == "client":
        _, writer = await session.open_stream()
        await send(writer)
        await session.receive_message()
    else:
        reader, _ = await session.accept_stream()
        await receive(reader)
        await session.send_message(b"done")
    await session.close(linger=2)

def stock_config(is_client):
    config = QuicConfiguration(is_client=is_client, alpn_protocols=["peerline/1"],
                               congestion_control_algorithm="cubic",
                               max_data=CFG.connection_window,
                               max_stream_data=CFG.stream_window,
                               verify_mode=ssl.CERT_NONE)
    if not is_client:
        config.load_cert_chain(Path(state) / "identity" / "cert.pem",
                               Path(state) / "identity" / "key.pem")
    return config

async def stock():
    if role == "server":
        done = asyncio.Event()
        async def handle(reader, writer):
            await receive(reader)
            writer.write_eof()
            done.set()
        server = await serve("127.0.0.1", port, configuration=stock_config(False),
                             stream_handler=lambda r, w: asyncio.ensure_future(handle(r, w)))
        await done.wait()
        await asyncio.sleep(0.5)
        server.close()
    else:
        async with connect("127.0.0.1", peer_port, configuration=stock_config(True),
                           local_port=port) as connection:
            reader, writer = await connection.create_stream()
            await send(writer)
            await reader.read()

aio.run(peerline() if kind == "peerline" else stock())
"""


def one_run(kind: str, megabytes: float, states: tuple[Path, Path]) -> float:
    """One transfer from the client to the server; the Mbit/s the server measured."""
    server_port, client_port = free_port(), free_port()
    size = str(int(megabytes * 1024 * 1024))

    def worker(role: str, port: int, peer_port: int, state: Path, peer_state: Path) -> list[str]:
        ends = (str(port), str(peer_port), str(state), str(peer_state))
        return [sys.executable, "-c", WORKER, kind, role, *ends, size]

    server = subprocess.Popen(
        worker("server", server_port, client_port, states[1], states[0]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        subprocess.run(
            worker("client", client_port, server_port, states[0], states[1]),
            timeout=300,
            check=True,
        )
        out, _ = server.communicate(timeout=60)
        return float(out.split()[0])
    finally:
        stop_process(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-session-") as directory:
        states = (Path(directory) / "client", Path(directory) / "server")
        for state in states:
            Identity.load_or_create(state)
        results: dict[str, list[float]] = {"peerline": [], "aioquic": []}
        for run in range(args.runs):
            for kind in ("peerline", "aioquic"):
                mbps = one_run(kind, args.megabytes, states)
                results[kind].append(mbps)
                print(f"run {run + 1}: {kind:8s} {mbps:7.1f} Mbit/s")
    ours, theirs = (statistics.median(results[k]) for k in ("peerline", "aioquic"))
    print(f"median: peerline {ours:.1f} Mbit/s, aioquic {theirs:.1f} Mbit/s")
    print(f"ratio peerline/aioquic: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
