"""Peer sessions against stock QUIC endpoints: aioquic's own asyncio server and client,
unmodified, in their own process, on 127.0.0.1.

They know nothing of fingerprints: a stock server presents its certificate and asks
for none; a stock client answers our certificate request with its certificate, or
with none. So this shows what a standard peer sees of ours: our client pins a
standard server; our server accepts a standard client whose certificate matches and
refuses one with the wrong certificate or none."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from peerline.session.config import SessionRole
from peerline.session.errors import EndReason, SessionClosed
from peerline.session.identity import Identity
from peerline.session.quic import PeerSession
from peerline.session.udp import UdpPath
from tests.support.procs import free_port, stop_process

pytestmark = pytest.mark.interop

STOCK_PEER = r"""
import asyncio, ssl, sys
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration

mode, port, peer_port, cert, key = sys.argv[1:6]
ALPN = ["peerline/1"]

async def echo(reader, writer):
    data = await reader.read()
    writer.write(data[::-1])
    writer.write_eof()

async def server():
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    config.load_cert_chain(cert, key)
    tasks = set()
    def on_stream(reader, writer):
        task = asyncio.ensure_future(echo(reader, writer))
        tasks.add(task)
    await serve("127.0.0.1", int(port), configuration=config, stream_handler=on_stream)
    print("ready", flush=True)
    await asyncio.sleep(60)

async def client():
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, verify_mode=ssl.CERT_NONE)
    if cert != "-":
        config.load_cert_chain(cert, key)
    try:
        async with connect("127.0.0.1", int(peer_port), configuration=config,
                           local_port=int(port)) as connection:
            reader, writer = await connection.create_stream()
            writer.write(b"hello from stock aioquic")
            writer.write_eof()
            reply = await asyncio.wait_for(reader.read(), 5)
            print("reply", reply.decode(), flush=True)
    except Exception as error:
        print("failed", type(error).__name__, flush=True)

asyncio.run(server() if mode == "server" else client())
"""


def identity_files(directory: Path) -> tuple[Identity, Path, Path]:
    identity = Identity.load_or_create(directory)
    return identity, directory / "identity" / "cert.pem", directory / "identity" / "key.pem"


@contextmanager
def stock_peer(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", STOCK_PEER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


async def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(30):
        return (await asyncio.to_thread(process.stdout.readline)).strip()


@pytest.mark.parametrize("pin_right", [True, False], ids=["right-pin", "wrong-pin"])
async def test_our_client_pins_a_stock_aioquic_server(tmp_path: Path, pin_right: bool) -> None:
    stock, cert, key = identity_files(tmp_path / "stock")
    me = Identity.ephemeral("us")
    pinned = stock if pin_right else Identity.ephemeral("someone else")
    port, our_port = free_port(), free_port()
    with stock_peer("server", str(port), "0", str(cert), str(key)) as process:
        assert await read_line(process) == "ready"
        path = await UdpPath.open(("127.0.0.1", our_port), ("127.0.0.1", port))
        session = PeerSession(
            path, role=SessionRole.CLIENT, identity=me, peer_fingerprint=pinned.fingerprint
        )
        path.listener = session
        try:
            if not pin_right:
                with pytest.raises(SessionClosed) as refused:
                    await session.connect(10)
                assert refused.value.reason is EndReason.FINGERPRINT_MISMATCH
                return
            await session.connect(10)
            reader, writer = await session.open_stream()
            writer.write(b"hello from peerline")
            writer.write_eof()
            async with asyncio.timeout(30):
                assert await reader.read() == b"hello from peerline"[::-1]
        finally:
            await session.close(linger=1)
            path.close()


@pytest.mark.parametrize("client_cert", ["matching", "other", "none"])
async def test_our_server_judges_a_stock_aioquic_client(tmp_path: Path, client_cert: str) -> None:
    stock, cert, key = identity_files(tmp_path / "stock")
    _, other_cert, other_key = identity_files(tmp_path / "other")
    me = Identity.ephemeral("us")
    files = {
        "matching": (str(cert), str(key)),
        "other": (str(other_cert), str(other_key)),
        "none": ("-", "-"),
    }[client_cert]
    our_port, stock_port = free_port(), free_port()
    path = await UdpPath.open(("127.0.0.1", our_port), ("127.0.0.1", stock_port))
    session = PeerSession(
        path, role=SessionRole.SERVER, identity=me, peer_fingerprint=stock.fingerprint
    )
    path.listener = session
    try:
        with stock_peer("client", str(stock_port), str(our_port), *files) as process:
            if client_cert == "matching":
                await session.connect(20)
                reader, writer = await session.accept_stream()
                async with asyncio.timeout(30):
                    data = await reader.read()
                writer.write(data[::-1])
                writer.write_eof()
                assert await read_line(process) == "reply " + "hello from stock aioquic"[::-1]
            else:
                with pytest.raises(SessionClosed) as refused:
                    await session.connect(20)
                assert refused.value.reason is EndReason.FINGERPRINT_MISMATCH
                detail = "no certificate" if client_cert == "none" else "expected"
                assert detail in refused.value.detail
                # the stock client sees its connection end (an empty reply or an error)
                outcome = await read_line(process)
                assert outcome == "reply" or outcome.startswith("failed"), outcome
    finally:
        await session.close(linger=1)
        path.close()
