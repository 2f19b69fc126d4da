"""PeerSession, the asyncio adapter, over real UDP sockets on 127.0.0.1: the pinned
handshake and its refusals, a 10 MB stream checked by SHA-256, messages both ways,
the path moved to other sockets mid-transfer, a lost path, an idle-out, loss,
garbage, and backpressure on writers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from peerline.session.config import SessionConfig
from peerline.session.core import SessionState
from peerline.session.errors import EndReason, SessionClosed
from peerline.session.identity import Identity
from peerline.session.path import PathInfo, PathListener
from peerline.session.quic import PeerSession
from peerline.session.selftest import facing_sessions
from peerline.session.udp import UdpPath, loopback_pair

ALICE = Identity.ephemeral("alice")
BOB = Identity.ephemeral("bob")
MALLORY = Identity.ephemeral("mallory")
BOUND = 60.0
"""Upper bound on any wait here: a hung test fails instead of hanging (not a timing check)."""


class LoopPath:
    """The test's DatagramPath: a loopback `UdpPath` it can swap for another, drop from
    (`loss`, seeded) or cut (`up = False`: nothing sent, nothing delivered)."""

    def __init__(self, inner: UdpPath, *, loss: float = 0.0, seed: int = 0) -> None:
        self.listener: PathListener | None = None
        self.loss = loss
        self.up = True
        self.dropped = 0
        self._rng = random.Random(seed)
        self.inner = inner
        inner.listener = self

    @property
    def address(self) -> tuple[str, int]:
        return self.inner.local

    def switch(self, inner: UdpPath) -> None:
        """Carry on over `inner`; the old socket is closed, so what was in flight is lost."""
        old, self.inner = self.inner, inner
        inner.listener = self
        old.close()

    def send(self, data: bytes) -> None:
        if not self.up:
            return
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return
        self.inner.send(data)

    def describe(self) -> PathInfo | None:
        return self.inner.describe()

    def datagram_received(self, data: bytes) -> None:
        if self.up and self.listener is not None:
            self.listener.datagram_received(data)

    def path_changed(self, info: PathInfo) -> None:
        raise AssertionError("a UdpPath never changes by itself")

    def path_lost(self, reason: str) -> None:
        raise AssertionError("a UdpPath is never lost by itself")

    def close(self) -> None:
        self.inner.close()


@dataclass
class Pair:
    client: PeerSession
    server: PeerSession
    client_path: LoopPath
    server_path: LoopPath

    async def connect(self) -> None:
        async with asyncio.timeout(BOUND):
            await asyncio.gather(self.client.connect(10), self.server.connect(10))


@contextlib.asynccontextmanager
async def session_pair(
    *,
    client_pins: Identity = BOB,
    server_pins: Identity = ALICE,
    config: SessionConfig | None = None,
    loss: float = 0.0,
) -> AsyncIterator[Pair]:
    inner_client, inner_server = await loopback_pair()
    client_path = LoopPath(inner_client, loss=loss, seed=1)
    server_path = LoopPath(inner_server, loss=loss, seed=2)
    client, server = facing_sessions(
        client_path,
        server_path,
        client=ALICE,
        server=BOB,
        client_pins=client_pins.fingerprint,
        server_pins=server_pins.fingerprint,
        config=config,
    )
    try:
        yield Pair(client, server, client_path, server_path)
    finally:
        for session in (client, server):
            with contextlib.suppress(SessionClosed):
                await session.close(linger=0)
        client_path.close()
        server_path.close()


async def read_all(reader: asyncio.StreamReader) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := await reader.read(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def write_all(writer: asyncio.StreamWriter, payload: bytes, chunk: int = 128 * 1024) -> None:
    view = memoryview(payload)
    for offset in range(0, len(payload), chunk):
        writer.write(view[offset : offset + chunk])
        await writer.drain()
    writer.write_eof()


PAYLOAD = random.Random(42).randbytes(10 * 1024 * 1024)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# -- handshake --------------------------------------------------------------------------------


async def test_sessions_connect_with_the_right_fingerprints() -> None:
    async with session_pair() as pair:
        await pair.connect()
        assert pair.client.state is SessionState.CONNECTED
        assert pair.server.state is SessionState.CONNECTED
        assert pair.client.path_info is not None
        assert pair.client.path_info.local_address == "{}:{}".format(*pair.client_path.address)


@pytest.mark.parametrize(
    ("client_pins", "server_pins", "refuser", "refused"),
    [(MALLORY, ALICE, "client", "server"), (BOB, MALLORY, "server", "client")],
    ids=["client-refuses", "server-refuses"],
)
async def test_a_wrong_fingerprint_is_refused(
    client_pins: Identity, server_pins: Identity, refuser: str, refused: str
) -> None:
    async with session_pair(client_pins=client_pins, server_pins=server_pins) as pair:
        sessions = {"client": pair.client, "server": pair.server}
        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(
                pair.client.connect(10), pair.server.connect(10), return_exceptions=True
            )
        errors = dict(zip(("client", "server"), results, strict=True))
        assert isinstance(errors[refuser], SessionClosed)
        assert errors[refuser].reason is EndReason.FINGERPRINT_MISMATCH  # type: ignore[union-attr]
        assert isinstance(errors[refused], SessionClosed)
        assert errors[refused].reason is EndReason.REFUSED_BY_PEER  # type: ignore[union-attr]
        for session in sessions.values():
            with pytest.raises(SessionClosed):
                await session.open_stream()


async def test_connect_gives_up_after_its_timeout_when_nobody_answers() -> None:
    async with session_pair() as pair:
        pair.client_path.up = False
        with pytest.raises(SessionClosed) as refused:
            await pair.client.connect(0.5)
        assert refused.value.reason is EndReason.CONNECT_TIMEOUT


# -- data -----------------------------------------------------------------------------------


async def test_ten_megabytes_cross_a_stream_intact() -> None:
    async with session_pair() as pair:
        await pair.connect()
        reader, writer = await pair.client.open_stream()
        async with asyncio.timeout(BOUND):
            write = asyncio.create_task(write_all(writer, PAYLOAD))
            peer_reader, peer_writer = await pair.server.accept_stream()
            digest, size = await read_all(peer_reader)
            await write
        assert size == len(PAYLOAD)
        assert digest == PAYLOAD_SHA
        peer_writer.write(b"thanks")
        peer_writer.write_eof()
        async with asyncio.timeout(BOUND):
            assert await reader.read() == b"thanks"


async def test_messages_flow_both_ways_in_order() -> None:
    async with session_pair() as pair:
        await pair.connect()

        async def send(session: PeerSession, tag: str) -> None:
            for n in range(500):
                await session.send_message(f"{tag}{n}".encode() * (n % 7))

        async def receive(session: PeerSession) -> list[bytes]:
            return [await session.receive_message() for _ in range(500)]

        async with asyncio.timeout(BOUND):
            _, _, at_server, at_client = await asyncio.gather(
                send(pair.client, "c"),
                send(pair.server, "s"),
                receive(pair.server),
                receive(pair.client),
            )
        assert at_server == [f"c{n}".encode() * (n % 7) for n in range(500)]
        assert at_client == [f"s{n}".encode() * (n % 7) for n in range(500)]


async def test_a_transfer_survives_the_path_moving_to_other_sockets() -> None:
    async with session_pair() as pair:
        await pair.connect()
        _, writer = await pair.client.open_stream()
        write = asyncio.create_task(write_all(writer, PAYLOAD))
        peer_reader, _ = await pair.server.accept_stream()
        digest, size = hashlib.sha256(), 0
        moved = False
        async with asyncio.timeout(BOUND):
            while chunk := await peer_reader.read(64 * 1024):
                digest.update(chunk)
                size += len(chunk)
                if not moved and size > len(PAYLOAD) // 4:
                    moved = True
                    old = (pair.client_path.address, pair.server_path.address)
                    new_client, new_server = await loopback_pair()
                    pair.client_path.switch(new_client)
                    pair.server_path.switch(new_server)
                    for path in (pair.client_path, pair.server_path):
                        info = path.describe()
                        assert info is not None
                        assert path.listener is not None
                        path.listener.path_changed(info)
                    assert (pair.client_path.address, pair.server_path.address) != old
            await write
        assert moved
        assert size == len(PAYLOAD)
        assert digest.hexdigest() == PAYLOAD_SHA
        assert pair.server.path_info == pair.server_path.describe()


async def test_a_path_losing_five_percent_still_delivers_everything() -> None:
    async with session_pair(loss=0.05) as pair:
        await pair.connect()
        payload = PAYLOAD[: 2 * 1024 * 1024]
        _, writer = await pair.client.open_stream()
        async with asyncio.timeout(BOUND):
            write = asyncio.create_task(write_all(writer, payload))
            for n in range(50):
                await pair.server.send_message(b"m%d" % n)
            peer_reader, _ = await pair.server.accept_stream()
            digest, size = await read_all(peer_reader)
            messages = [await pair.client.receive_message() for _ in range(50)]
            await write
        assert (digest, size) == (hashlib.sha256(payload).hexdigest(), len(payload))
        assert messages == [b"m%d" % n for n in range(50)]
        assert pair.client_path.dropped > 0  # the path did lose some


# -- endings ----------------------------------------------------------------------------------


async def test_path_lost_is_reported_to_every_waiter() -> None:
    async with session_pair() as pair:
        await pair.connect()
        reader, _ = await pair.client.open_stream()
        waiters = [
            asyncio.create_task(reader.read()),
            asyncio.create_task(pair.client.accept_stream()),
            asyncio.create_task(pair.client.receive_message()),
        ]
        await asyncio.sleep(0)
        pair.client.path_lost("consent expired")
        async with asyncio.timeout(BOUND):
            outcomes = await asyncio.gather(*waiters, return_exceptions=True)
            ended = await pair.client.wait_ended()
        assert all(isinstance(o, SessionClosed) for o in outcomes), outcomes
        assert {o.reason for o in outcomes if isinstance(o, SessionClosed)} == {EndReason.PATH_LOST}
        assert ended.reason is EndReason.PATH_LOST
        assert ended.detail == "consent expired"
        with pytest.raises(SessionClosed, match="path to the peer was lost"):
            await pair.client.send_message(b"too late")


async def test_a_silent_peer_idles_the_session_out() -> None:
    config = SessionConfig(idle_timeout=1.0, keepalive_interval=0.3)
    async with session_pair(config=config) as pair:
        await pair.connect()
        pair.server_path.up = False
        pair.client_path.up = False
        async with asyncio.timeout(BOUND):
            client_end, server_end = await asyncio.gather(
                pair.client.wait_ended(), pair.server.wait_ended()
            )
        assert client_end.reason is EndReason.IDLE_TIMEOUT
        assert server_end.reason is EndReason.IDLE_TIMEOUT


async def test_close_waits_for_written_data_then_tells_the_peer() -> None:
    async with session_pair() as pair:
        await pair.connect()
        _, writer = await pair.client.open_stream()
        writer.write(PAYLOAD[:3_000_000])
        writer.write_eof()
        peer_reader, _ = await pair.server.accept_stream()
        reading = asyncio.create_task(read_all(peer_reader))
        async with asyncio.timeout(BOUND):
            await pair.client.close()
            digest, size = await reading
            server_end = await pair.server.wait_ended()
        assert (digest, size) == (hashlib.sha256(PAYLOAD[:3_000_000]).hexdigest(), 3_000_000)
        assert server_end.reason is EndReason.PEER_CLOSED
        assert pair.client.ended is not None
        assert pair.client.ended.reason is EndReason.LOCAL_CLOSE


# -- robustness --------------------------------------------------------------------------------


async def test_garbage_datagrams_do_not_crash_either_session() -> None:
    async with session_pair() as pair:
        rng = random.Random(9)

        def spray(count: int) -> None:
            """Junk from each side's own socket to the other (the address a path trusts)."""
            for _ in range(count):
                pair.client_path.inner.send(rng.randbytes(rng.randrange(1, 1400)))
                pair.server_path.inner.send(rng.randbytes(rng.randrange(1, 1400)))
                pair.client.datagram_received(rng.randbytes(rng.randrange(0, 1500)))

        spray(100)  # before the handshake
        await pair.connect()
        _, writer = await pair.client.open_stream()
        write = asyncio.create_task(write_all(writer, PAYLOAD[:1_000_000]))
        peer_reader, _ = await pair.server.accept_stream()
        for _ in range(50):  # and during a transfer
            spray(4)
            await asyncio.sleep(0)
        async with asyncio.timeout(BOUND):
            digest, size = await read_all(peer_reader)
            await write
        assert (digest, size) == (hashlib.sha256(PAYLOAD[:1_000_000]).hexdigest(), 1_000_000)
        assert pair.client.ended is None
        assert pair.server.ended is None


async def test_writers_wait_while_the_peer_does_not_read() -> None:
    async with session_pair() as pair:
        await pair.connect()
        _, writer = await pair.client.open_stream()
        writer.write(PAYLOAD[: 8 * 1024 * 1024])
        drain = asyncio.create_task(writer.drain())
        peer_reader, _ = await pair.server.accept_stream()
        await asyncio.sleep(0.3)  # the peer reads nothing: its credit stops at about its window
        assert not drain.done()
        assert writer.transport.get_write_buffer_size() > pair.client.config.write_high_water
        async with asyncio.timeout(BOUND):
            received = await peer_reader.readexactly(8 * 1024 * 1024)
            await drain
        assert received == PAYLOAD[: 8 * 1024 * 1024]


async def test_more_streams_than_the_concurrent_limit_come_and_go_both_ways() -> None:
    """QUIC allows 128 open streams per side at once; finished ones give their place back."""
    async with session_pair() as pair:
        await pair.connect()

        async def echo_server(session: PeerSession, count: int) -> None:
            for _ in range(count):
                reader, writer = await session.accept_stream()
                writer.write((await reader.read())[::-1])
                writer.write_eof()

        async def ask(session: PeerSession, n: int) -> bytes:
            reader, writer = await session.open_stream()
            writer.write(b"question %d" % n)
            writer.write_eof()
            return await reader.read()

        async with asyncio.timeout(BOUND):
            servers = [
                asyncio.create_task(echo_server(pair.server, 200)),
                asyncio.create_task(echo_server(pair.client, 200)),
            ]
            from_client = await asyncio.gather(*(ask(pair.client, n) for n in range(200)))
            from_server = await asyncio.gather(*(ask(pair.server, n) for n in range(200)))
            await asyncio.gather(*servers)
        expected = [(b"question %d" % n)[::-1] for n in range(200)]
        assert from_client == expected
        assert from_server == expected
