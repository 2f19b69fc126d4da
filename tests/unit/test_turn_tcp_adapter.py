"""RFC 6062 TCP relays through peerline serve's real sockets, on loopback, in-process:
Connect from the relayed address itself, data a peer sent before ConnectionBind
arriving after it, bulk data both ways, ConnectionAttempt for a permitted peer, a
peer without permission closed at once, and closing one side closing the other."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from peerline.net import Address
from peerline.stun import (
    AttributeType,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    long_term_key,
    parse,
)
from peerline.stun.attributes import encode_byte
from peerline.supernode.config import build_config
from peerline.supernode.server import Supernode
from peerline.turn.tcp_relay import TCP_PROTOCOL
from tests.support.procs import free_port

USER, PASSWORD, REALM = "alice", "wonderland", "peerline.test"
TIMEOUT = 5.0


class StreamTurn:
    """A TURN client over one TCP connection, by hand: framed STUN until bound."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.nonce = ""
        self.indications: list[Message] = []

    @classmethod
    async def open(cls, port: int, nonce: str = "") -> "StreamTurn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.nonce = nonce
        return client

    async def read_message(self) -> Message:
        head = await asyncio.wait_for(self.reader.readexactly(20), TIMEOUT)
        body = await self.reader.readexactly(int.from_bytes(head[2:4]))
        return parse(head + body)

    async def next_indication(self) -> Message:
        while not self.indications:
            self.indications.append(await self.read_message())
        return self.indications.pop(0)

    async def request(self, builder: MessageBuilder) -> Message:
        """Signed with the long-term key (after one 401 for the nonce); the answer."""
        for _ in range(2):
            copy = MessageBuilder(builder.method, MessageClass.REQUEST)
            copy.add_encoded(builder.build().raw[20:])
            copy.add_text(AttributeType.USERNAME, USER)
            copy.add_text(AttributeType.REALM, REALM)
            copy.add_text(AttributeType.NONCE, self.nonce or "none")
            self.writer.write(copy.encode(integrity_key=long_term_key(USER, REALM, PASSWORD)))
            while True:
                answer = await self.read_message()
                if answer.message_class is not MessageClass.INDICATION:
                    break
                self.indications.append(answer)
            error = answer.error_code
            if error is None or error.code not in (401, 438) or not answer.nonce:
                return answer
            self.nonce = answer.nonce
        return answer

    async def allocate_tcp(self) -> Address:
        builder = MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST)
        builder.add(AttributeType.REQUESTED_TRANSPORT, encode_byte(TCP_PROTOCOL))
        answer = await self.request(builder)
        assert answer.message_class is MessageClass.SUCCESS, answer
        relayed = answer.xor_relayed_address
        assert relayed is not None
        return relayed.ip, relayed.port

    async def with_peer(self, method: Method, peer: Address) -> Message:
        builder = MessageBuilder(method, MessageClass.REQUEST)
        builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
        return await self.request(builder)

    async def bind(self, connection_id: bytes) -> Message:
        builder = MessageBuilder(Method.CONNECTION_BIND, MessageClass.REQUEST)
        builder.add(AttributeType.CONNECTION_ID, connection_id)
        return await self.request(builder)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def turn_port(tmp_path: Path) -> AsyncIterator[int]:
    port = free_port(socket.SOCK_STREAM)
    config = build_config(
        {},
        {
            "listen": ["127.0.0.1"],
            "stun_port": port,
            "tls_port": 0,
            "sip_port": 0,
            "sip_tls_port": 0,
            "rate": 0,
            "user": (f"{USER}:{PASSWORD}",),
            "realm": REALM,
            "allow_peer": ("127.0.0.0/8",),
            "state_dir": str(tmp_path),
        },
    )
    node = Supernode(config)
    await node.start()
    try:
        yield port
    finally:
        await node.stop()


class Peer:
    """A TCP server standing in for the peer; hands over each connection it accepts."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.server: asyncio.Server | None = None

    async def start(self) -> Address:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.accepted.put((reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        name = self.server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    async def next(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def closed(reader: asyncio.StreamReader) -> None:
    """Read away what is left until the other side closes (TimeoutError if it does not)."""
    while await asyncio.wait_for(reader.read(65536), TIMEOUT):
        pass


@dataclass
class Splice:
    """A client's data connection bound to a peer connection made by Connect."""

    control: StreamTurn
    data: StreamTurn
    peer_address: Address
    peer_reader: asyncio.StreamReader
    peer_writer: asyncio.StreamWriter


@contextlib.asynccontextmanager
async def spliced(port: int, before_bind: bytes = b"") -> AsyncIterator[Splice]:
    """Allocate, Connect to a peer, (the peer sends `before_bind`), ConnectionBind."""
    peer = Peer()
    peer_address = await peer.start()
    control = await StreamTurn.open(port)
    data = None
    try:
        relayed = await control.allocate_tcp()
        answer = await control.with_peer(Method.CONNECT, peer_address)
        assert answer.message_class is MessageClass.SUCCESS, answer
        connection_id = answer.get(AttributeType.CONNECTION_ID)
        assert connection_id is not None
        assert len(connection_id) == 4
        peer_reader, peer_writer = await peer.next()
        # The server connected from the relayed address itself (RFC 6062 §5.2).
        assert peer_writer.get_extra_info("peername") == relayed
        if before_bind:
            peer_writer.write(before_bind)
            await peer_writer.drain()
        data = await StreamTurn.open(port, control.nonce)
        bound = await data.bind(connection_id)
        assert bound.message_class is MessageClass.SUCCESS, bound
        yield Splice(control, data, peer_address, peer_reader, peer_writer)
    finally:
        control.close()
        if data is not None:
            data.close()
        peer.close()


async def test_connect_bind_and_data_both_ways(turn_port: int) -> None:
    async with spliced(turn_port, b"sent before the bind") as splice:
        data, peer_reader, peer_writer = splice.data, splice.peer_reader, splice.peer_writer
        early = await asyncio.wait_for(data.reader.readexactly(20), TIMEOUT)
        assert early == b"sent before the bind"
        bulk = bytes(range(256)) * 4096  # 1 MiB: more than any one buffer holds
        data.writer.write(bulk)
        assert await asyncio.wait_for(peer_reader.readexactly(len(bulk)), TIMEOUT) == bulk
        peer_writer.write(bulk)
        assert await asyncio.wait_for(data.reader.readexactly(len(bulk)), TIMEOUT) == bulk
        again = await splice.control.with_peer(Method.CONNECT, splice.peer_address)
        assert again.error_code is not None
        assert again.error_code.code == 446
        peer_writer.close()  # the peer leaves: the client's data connection ends too
        await closed(data.reader)


async def test_connect_to_a_closed_port_is_447(turn_port: int) -> None:
    control = await StreamTurn.open(turn_port)
    try:
        await control.allocate_tcp()
        answer = await control.with_peer(Method.CONNECT, ("127.0.0.1", free_port()))
        assert answer.error_code is not None
        assert answer.error_code.code == 447
    finally:
        control.close()


async def test_permitted_peer_gets_through_after_a_connection_attempt(turn_port: int) -> None:
    control = await StreamTurn.open(turn_port)
    data = None
    try:
        relayed = await control.allocate_tcp()
        answer = await control.with_peer(Method.CREATE_PERMISSION, ("127.0.0.1", 0))
        assert answer.message_class is MessageClass.SUCCESS, answer
        peer_reader, peer_writer = await asyncio.open_connection(*relayed)
        indication = await control.next_indication()
        assert indication.method == Method.CONNECTION_ATTEMPT
        peer_name = peer_writer.get_extra_info("sockname")
        assert [(p.ip, p.port) for p in indication.xor_peer_addresses] == [peer_name]
        connection_id = indication.get(AttributeType.CONNECTION_ID)
        assert connection_id is not None
        data = await StreamTurn.open(turn_port, control.nonce)
        assert (await data.bind(connection_id)).message_class is MessageClass.SUCCESS
        data.writer.write(b"to the peer")
        assert await asyncio.wait_for(peer_reader.readexactly(11), TIMEOUT) == b"to the peer"
        peer_writer.write(b"to the client")
        assert await asyncio.wait_for(data.reader.readexactly(13), TIMEOUT) == b"to the client"
        control.close()  # the allocation goes: so do its connections
        await closed(peer_reader)
        await closed(data.reader)
        peer_writer.close()
    finally:
        control.close()
        if data is not None:
            data.close()


async def test_peer_without_permission_is_closed_at_once(turn_port: int) -> None:
    control = await StreamTurn.open(turn_port)
    try:
        relayed = await control.allocate_tcp()
        peer_reader, peer_writer = await asyncio.open_connection(*relayed)
        await closed(peer_reader)
        peer_writer.close()
        # A ConnectionAttempt would have come before the answer to this request.
        refreshed = await control.request(MessageBuilder(Method.REFRESH, MessageClass.REQUEST))
        assert refreshed.message_class is MessageClass.SUCCESS, refreshed
        assert control.indications == []
    finally:
        control.close()


async def test_half_close_passes_through_both_ways(turn_port: int) -> None:
    """A client that sends its request and shuts its sending side still gets the answer."""
    async with spliced(turn_port) as splice:
        splice.data.writer.write(b"question")
        splice.data.writer.write_eof()
        question = await asyncio.wait_for(splice.peer_reader.read(), TIMEOUT)
        assert question == b"question"  # and then the end of the stream
        splice.peer_writer.write(b"answer")
        splice.peer_writer.close()
        assert await asyncio.wait_for(splice.data.reader.read(), TIMEOUT) == b"answer"
