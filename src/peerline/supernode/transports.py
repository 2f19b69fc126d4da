"""Thin asyncio adapters: move bytes between sockets and the sans-IO services.

Nothing here knows a protocol. A UDP endpoint hands each datagram to a
`DatagramHandler` and sends whatever it answers from whichever of the server's
sockets it names; a stream connection cuts the byte stream into messages with a
`Framer` and writes the answers back on the same connection. Connections that
send nothing useful for `idle_timeout` seconds are closed, so half-open or
silent connections cannot pile up.
"""

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol, cast

from peerline.net import Address, format_address

log = logging.getLogger(__name__)

#: Bytes queued for a slow stream reader before further writes are dropped.
_MAX_WRITE_BUFFER = 1 << 20


class Transport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class Reply(NamedTuple):
    """Bytes to send, from the local socket `local`, to `destination`.

    On a stream connection `local` and `destination` are ignored: the answer goes
    back on the connection the request came in on. (A NamedTuple: one is built per
    answered datagram, and a tuple is the cheapest object Python builds.)
    """

    data: bytes
    local: Address
    destination: Address


class DatagramHandler(Protocol):
    def __call__(
        self, data: bytes, source: Address, local: Address, transport: Transport, now: float
    ) -> Reply | None: ...


class Framer(Protocol):
    def __call__(self, buffer: bytearray) -> int:
        """Length of the first complete message in `buffer`, 0 if incomplete, -1 if garbage."""
        ...


class StreamSink(Protocol):
    """Where a diverted connection's bytes go unframed (an RFC 6062 data connection)."""

    def data(self, data: bytes) -> None: ...

    def eof(self) -> None:
        """The other side will send nothing more (it may still read)."""

    def pause_writing(self) -> None:
        """The connection's send buffer is full: stop feeding it."""

    def resume_writing(self) -> None:
        """The connection's send buffer drained: feed it again."""


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound UDP socket feeding a handler; answers may leave from a sibling socket."""

    def __init__(self, local: Address, handler: DatagramHandler, registry: "UdpRegistry") -> None:
        self.local = local
        self._handler = handler
        self._registry = registry
        self._time = asyncio.get_running_loop().time
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # The hot path of every UDP service: the event loop already gives (ip, port)
        # for IPv4 (IPv6 adds flow info and scope, which are dropped). No `cast()`:
        # it is a function call per datagram.
        source: Address = addr if len(addr) == 2 else addr[:2]  # type: ignore[assignment]
        reply = self._handler(data, source, self.local, Transport.UDP, self._time())
        if reply is None:
            return
        local = reply.local
        sender = self if local is self.local or local == self.local else self._registry.get(local)
        if sender is not None and sender.transport is not None:
            sender.transport.sendto(reply.data, reply.destination)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable from a vanished client) are normal on a server.
        log.debug("udp %s: %s", format_address(self.local), exc)


class UdpRegistry:
    """The server's UDP sockets by local address, so an answer can pick its sender."""

    def __init__(self) -> None:
        self._endpoints: dict[Address, UdpEndpoint] = {}

    def get(self, local: Address) -> UdpEndpoint | None:
        return self._endpoints.get(local)

    async def open(self, local: Address, handler: DatagramHandler) -> UdpEndpoint:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.bind(local)
        except OSError:
            sock.close()
            raise
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(local, handler, self), sock=sock
        )
        self._endpoints[local] = endpoint
        return endpoint

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Bounds that keep a stream listener alive under abuse."""

    idle_timeout: float = 60.0
    max_connections: int = 10000
    max_buffer: int = 65536 + 20


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: frames messages, answers on the same connection."""

    def __init__(self, listener: "StreamListener") -> None:
        self._listener = listener
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer: Address = ("", 0)
        self._idle: asyncio.TimerHandle | None = None
        #: A pinned connection (one carrying a TURN allocation) has no idle timeout:
        #: the allocation's own lifetime governs it.
        self.pinned = False
        #: Once diverted, received bytes go to this sink as they are, unframed.
        self._sink: StreamSink | None = None

    @property
    def peer(self) -> Address:
        return self._peer

    def write(self, data: bytes) -> None:
        """Send on this connection; dropped while the peer is not reading (a relay
        must not buffer without bound for a client that stopped reading)."""
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() < _MAX_WRITE_BUFFER:
            transport.write(data)

    def divert(self, sink: StreamSink) -> None:
        """From now on every received byte goes to `sink` unframed, and the connection
        never idles out (RFC 6062: a client data connection after ConnectionBind). Bytes
        already received past the last framed message go first."""
        self._sink = sink
        self.pin(True)
        rest = bytes(self._buffer)
        self._buffer.clear()
        if rest:
            sink.data(rest)

    def pause_reading(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_reading():
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.pause_writing()

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.resume_writing()

    def finish(self) -> None:
        """Close after what is queued has been sent."""
        if self._transport is not None:
            self._transport.close()

    def finish_writing(self) -> None:
        """Send nothing more but keep reading (a half close), where the transport can;
        over TLS, close after what is queued."""
        transport = self._transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
        else:
            self.finish()

    def eof_received(self) -> bool | None:
        if self._sink is not None:  # a diverted connection may still be written to
            self._sink.eof()
            return True
        return None

    def pin(self, pinned: bool = True) -> None:
        self.pinned = pinned
        if pinned and self._idle is not None:
            self._idle.cancel()
            self._idle = None
        elif not pinned:
            self._arm_idle()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        transport = self._transport
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if not self._listener.admit(self):
            transport.abort()
            return
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.pinned:
            self._idle = None
            return
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self._listener.limits.idle_timeout, self._close)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.data(data)
            return
        listener = self._listener
        buffer = self._buffer
        buffer += data
        if len(buffer) > listener.limits.max_buffer:
            self._close()
            return
        loop = asyncio.get_running_loop()
        while buffer:
            size = listener.framer(buffer)
            if size < 0:
                self._close()
                return
            if size == 0:
                return
            message = bytes(buffer[:size])
            del buffer[:size]
            self._arm_idle()
            reply = listener.handler(
                message, self._peer, listener.local, listener.transport, loop.time()
            )
            if reply is not None and self._transport is not None:
                self._transport.write(reply.data)
            if self._sink is not None:  # diverted by that message: the rest went along
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._listener.release(self)


class StreamListener:
    """A TCP or TLS listening socket with a connection cap."""

    def __init__(
        self,
        local: Address,
        transport: Transport,
        handler: DatagramHandler,
        *,
        framer: Framer,
        limits: StreamLimits,
        tls: ssl.SSLContext | None = None,
        on_close: Callable[[Address, Address, Transport], None] | None = None,
    ) -> None:
        self.local = local
        self.on_close = on_close
        self._by_peer: dict[Address, StreamConnection] = {}
        self.transport = transport
        self.handler = handler
        self.framer = framer
        self.limits = limits
        self._tls = tls
        self._connections: set[StreamConnection] = set()
        self._server: asyncio.Server | None = None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def admit(self, connection: StreamConnection) -> bool:
        if len(self._connections) >= self.limits.max_connections:
            return False
        self._connections.add(connection)
        self._by_peer[connection.peer] = connection
        return True

    def release(self, connection: StreamConnection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            self._by_peer.pop(connection.peer, None)
            if self.on_close is not None:
                self.on_close(connection.peer, self.local, self.transport)

    def connection(self, peer: Address) -> StreamConnection | None:
        """The open connection from `peer`, for answers that are not replies (relayed data)."""
        return self._by_peer.get(peer)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = lambda: StreamConnection(self)  # noqa: E731
        self._server = await loop.create_server(
            factory,
            host=self.local[0],
            port=self.local[1],
            ssl=self._tls,
            reuse_address=True,
            ssl_handshake_timeout=10.0 if self._tls else None,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection._close()
            await self._server.wait_closed()
