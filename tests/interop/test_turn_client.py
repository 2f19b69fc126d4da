"""peerline's TURN client against coturn's turnserver and against `peerline serve`:
allocate through the challenge, Send indications and channels both ways with a
real UDP peer on loopback, and deallocation."""

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerline.stun import MessageBuilder, MessageClass, Method, Transport, parse
from peerline.turn.aioclient import AsyncTurnClient, TurnError
from peerline.turn.client import ClientConfig
from tests.interop.turn_support import PASSWORD, REALM, USER, turn_server
from tests.support.procs import free_port, require_program, running

pytestmark = pytest.mark.interop


def answers_stun(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        probe.sendto(MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode(), (host, port))
        try:
            return parse(probe.recv(2048)).message_class is MessageClass.SUCCESS
        except OSError:
            return False


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    turnserver = require_program("turnserver", "coturn")
    tmp: Path = tmp_path_factory.mktemp("coturn")
    port = free_port()
    argv = [
        turnserver,
        "-n",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--listening-ip=127.0.0.1",
        f"--listening-port={port}",
        "--relay-ip=127.0.0.1",
        "--lt-cred-mech",
        f"--user={USER}:{PASSWORD}",
        f"--realm={REALM}",
        "--allow-loopback-peers",
        f"--pidfile={tmp / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
    ]
    with running(argv, ready=lambda: answers_stun(port), log=tmp / "coturn.log"):
        yield port


@pytest.fixture(scope="module")
def peerline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    with turn_server(tmp_path_factory.mktemp("serve")) as server:
        yield server.port, server.tls_port


class EchoPeer(asyncio.DatagramProtocol):
    """A UDP peer on loopback that answers every datagram with 'echo:' + data."""

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport | None = transport  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def echo_peer() -> "contextlib.AbstractAsyncContextManager[tuple[str, int]]":  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(EchoPeer, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[:2]
    finally:
        transport.close()


async def exercise(server: tuple[str, int], transport: Transport) -> None:
    context = None
    if transport is Transport.TLS:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    config = ClientConfig(server=server, username=USER, password=PASSWORD, transport=transport)
    client = AsyncTurnClient(config, tls=context)
    allocated = await client.allocate(timeout=10)
    assert allocated.relayed[0] == "127.0.0.1"
    try:
        async with echo_peer() as peer:
            await client.create_permission(peer[0])
            client.send(b"indication", peer)  # no channel yet: a Send indication
            async with asyncio.timeout(5):
                assert await client.recv() == (b"echo:indication", peer)
            await client.bind_channel(peer)
            for i in range(20):
                client.send(b"channel %d" % i, peer)
            async with asyncio.timeout(5):
                got = {(await client.recv())[0] for _ in range(20)}
            assert got == {b"echo:channel %d" % i for i in range(20)}
    finally:
        await client.close()
    assert client.core.state.value == "closed"


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_against_coturn(coturn: int, transport: Transport) -> None:
    await exercise(("127.0.0.1", coturn), transport)


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP, Transport.TLS])
async def test_against_peerline_serve(
    peerline_server: tuple[int, int], transport: Transport
) -> None:
    port = peerline_server[1] if transport is Transport.TLS else peerline_server[0]
    await exercise(("127.0.0.1", port), transport)


async def test_wrong_password_is_an_error(coturn: int) -> None:
    config = ClientConfig(server=("127.0.0.1", coturn), username=USER, password="wrong")
    client = AsyncTurnClient(config)
    with pytest.raises(TurnError) as caught:
        await client.allocate(timeout=10)
    assert caught.value.code == 401
    await client.close()
