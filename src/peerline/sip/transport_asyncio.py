"""The asyncio adapter of the SIP element: UDP, TCP, TLS, WebSocket and secure WebSocket.

It only moves bytes. Every stream connection gets an id and is kept in a
registry, because SIP Outbound sends a phone's calls back over the very
connection it registered on; a message for a connection id that has gone is
reported to the element as a send failure. Sends to a peer with no
connection open one (or reuse the one already open to that address, RFC 5923
style). WebSocket (RFC 7118) is wsproto over the same stream code, one SIP
message per frame. One timer handle is re-armed when the element's next
deadline moves; how long handling takes is reported to the element's
overload gate.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    TextMessage,
)
from wsproto.events import Request as WsRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from peerline.sip.element import SipElement
from peerline.sip.errors import MalformedMessage
from peerline.sip.flow import Address, Flow
from peerline.sip.framing import PONG, KeepAlivePing, MessageBytes, StreamFramer
from peerline.sip.methods import Transport

log = logging.getLogger(__name__)

_WS = (Transport.WS, Transport.WSS)


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """Limits of the SIP sockets."""

    #: A connection silent this long is closed (longer than the Outbound Flow-Timer).
    idle_timeout: float = 300.0
    max_connections: int = 20000
    connect_timeout: float = 5.0
    #: Receive buffer of a UDP socket. Small on purpose: under overload the kernel
    #: drops what does not fit (which costs us nothing), and what does fit waits
    #: a fraction of a second, not the seconds after which phones retransmit
    #: (T1 = 0.5 s) and so multiply the load. 256 KiB holds a few hundred requests.
    udp_receive_buffer: int = 256 * 1024


class SipServer:
    """Runs a `SipElement` on sockets; one per supernode."""

    def __init__(self, element: SipElement, settings: SocketSettings | None = None) -> None:
        self.element = element
        self.settings = settings or SocketSettings()
        self._loop = asyncio.get_running_loop()
        self._udp: dict[Address, asyncio.DatagramTransport] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: dict[int, _Connection] = {}
        self._by_remote: dict[tuple[Transport, Address], int] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._connecting: dict[tuple[Transport, Address], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client_tls = ssl.create_default_context()
        # Phones present self-signed certificates; a TLS flow to one is still encrypted.
        self._client_tls.check_hostname = False
        self._client_tls.verify_mode = ssl.CERT_NONE
        self._flushing = False

    # -- listening -----------------------------------------------------------
    async def listen_udp(self, local: Address) -> None:
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.settings.udp_receive_buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.bind(local)
        except OSError:
            sock.close()
            raise
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Datagrams(self, local), sock=sock
        )
        self._udp[local] = transport
        self.element.add_listener(Transport.UDP, local)

    async def listen_stream(
        self, local: Address, transport: Transport, tls: ssl.SSLContext | None = None
    ) -> None:
        """TCP, TLS (with `tls`), WS or WSS (with `tls`)."""

        def factory() -> asyncio.Protocol:
            return _Connection(self, transport, local, None)

        server = await self._loop.create_server(
            factory,
            host=local[0],
            port=local[1],
            ssl=tls,
            reuse_address=True,
            ssl_handshake_timeout=10.0 if tls else None,
        )
        self._servers.append(server)
        self.element.add_listener(transport, local)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            server.close()
        for connection in list(self._connections.values()):
            connection.abort()
        for server in self._servers:
            await server.wait_closed()
        for udp in self._udp.values():
            udp.close()
        self._udp.clear()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # -- the element ---------------------------------------------------------
    def feed(self, data: bytes, flow: Flow) -> None:
        started = time.perf_counter()
        now = self._loop.time()
        self.element.receive(data, flow, now)
        self.flush()
        self.element.guard.record_busy(time.perf_counter() - started, now)

    def flush(self) -> None:
        """Send what the element wants sent, then re-arm the timer."""
        if self._flushing:
            return
        self._flushing = True
        try:
            element = self.element
            while sends := element.take_sends():
                failed = [send.flow for send in sends if not self._send(send.data, send.flow)]
                now = self._loop.time()
                for flow in failed:
                    element.send_failed(flow, now)
        finally:
            self._flushing = False
        self._arm()

    def _send(self, data: bytes, flow: Flow) -> bool:
        if flow.transport is Transport.UDP:
            udp = self._udp.get(flow.local) or next(iter(self._udp.values()), None)
            if udp is None:
                return False
            try:
                udp.sendto(data, flow.remote)
            except (OSError, ValueError) as error:  # e.g. an IPv6 peer on an IPv4 socket
                log.debug("cannot send to %s: %s", flow.describe(), error)
                return False
            return True
        connection_id = flow.connection or self._by_remote.get((flow.transport, flow.remote), 0)
        if connection_id:
            connection = self._connections.get(connection_id)
            if connection is None:
                return False
            connection.send(data)
            return True
        if flow.transport in _WS:
            return False  # nobody can open a WebSocket towards a browser
        self._connect(data, flow)
        return True

    def _connect(self, data: bytes, flow: Flow) -> None:
        key = (flow.transport, flow.remote)
        waiting = self._connecting.get(key)
        if waiting is not None:
            waiting.append(data)
            return
        self._connecting[key] = [data]
        task = self._loop.create_task(self._open(flow))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sip connect task failed", exc_info=task.exception())

    async def _open(self, flow: Flow) -> None:
        key = (flow.transport, flow.remote)
        tls = self._client_tls if flow.transport is Transport.TLS else None
        try:
            _, protocol = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: _Connection(self, flow.transport, flow.local, flow.remote),
                    host=flow.remote[0],
                    port=flow.remote[1],
                    ssl=tls,
                    local_addr=(flow.local[0], 0),
                ),
                self.settings.connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            log.debug("cannot connect to %s: %s", flow.describe(), error)
            self._connecting.pop(key, None)
            self.element.send_failed(flow, self._loop.time())
            self.flush()
            return
        for data in self._connecting.pop(key, []):
            protocol.send(data)

    def _arm(self) -> None:
        deadline = self.element.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.element.handle_timer(self._loop.time())
        self.flush()

    # -- the connection registry ---------------------------------------------
    def admit(self, connection: _Connection) -> int | None:
        if len(self._connections) >= self.settings.max_connections:
            return None
        connection_id = next(self._ids)
        self._connections[connection_id] = connection
        return connection_id

    def opened(self, connection: _Connection) -> None:
        flow = connection.flow
        self._by_remote[(flow.transport, flow.remote)] = flow.connection
        self.element.connection_opened(flow)

    def closed(self, connection: _Connection) -> None:
        flow = connection.flow
        self._connections.pop(flow.connection, None)
        key = (flow.transport, flow.remote)
        if self._by_remote.get(key) == flow.connection:
            del self._by_remote[key]
        self.element.flow_closed(flow, self._loop.time())
        self.flush()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer, local: Address) -> None:
        self._server = server
        self._local = local

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        remote = (str(addr[0]), int(addr[1]))
        self._server.feed(data, Flow(Transport.UDP, self._local, remote))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip udp %s: %s", self._local, exc)


class _Connection(asyncio.Protocol):
    """One TCP/TLS/WS/WSS connection, accepted (`remote` None) or opened by us."""

    def __init__(
        self, server: SipServer, transport: Transport, local: Address, remote: Address | None
    ) -> None:
        self._server = server
        self._kind = transport
        self._local = local
        self._remote = remote
        self.flow = Flow(transport, local, remote or ("", 0))
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer()
        self._ws: WSConnection | None = None
        self._ws_open = False
        self._idle: asyncio.TimerHandle | None = None
        self._last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = self._transport.get_extra_info("peername")
        remote = self._remote or ((str(peer[0]), int(peer[1])) if peer else ("", 0))
        connection_id = self._server.admit(self)
        if connection_id is None:
            self._transport.abort()
            return
        self.flow = Flow(self._kind, self._local, remote, connection_id)
        if self._kind in _WS:
            self._ws = WSConnection(ConnectionType.SERVER)
        else:
            self._server.opened(self)
        self._touch()

    def _touch(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(self._server.settings.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._server.settings.idle_timeout
        quiet = loop.time() - self._last
        if quiet >= timeout:
            self._idle = None
            self.abort()
        else:
            self._idle = loop.call_later(timeout - quiet, self._check_idle)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if self._ws is not None:
            if not self._ws_open:
                return
            text = data.decode("utf-8", "replace")
            self._transport.write(self._ws.send(TextMessage(data=text)))
            return
        self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._touch()
        if self._ws is not None:
            self._ws_received(data)
            return
        framer = self._framer
        framer.receive_data(data)
        while True:
            try:
                event = framer.next_event()
            except MalformedMessage:
                self.abort()
                return
            if event is None:
                return
            if isinstance(event, MessageBytes):
                self._server.feed(event.data, self.flow)
            elif isinstance(event, KeepAlivePing):
                if self._transport is not None:
                    self._transport.write(PONG)
                self._server.element.touch(self.flow, asyncio.get_running_loop().time())

    def _ws_received(self, data: bytes) -> None:
        ws = self._ws
        assert ws is not None
        try:
            ws.receive_data(data)
            for event in ws.events():
                self._ws_event(ws, event)
        except (LocalProtocolError, RemoteProtocolError):
            self.abort()

    def _ws_event(self, ws: WSConnection, event: object) -> None:
        write: Callable[[bytes], None] = (
            self._transport.write if self._transport is not None else (lambda _b: None)
        )
        if isinstance(event, WsRequest):
            if "sip" not in [p.lower() for p in event.subprotocols]:
                write(ws.send(RejectConnection(status_code=400)))
                self.abort()
                return
            write(ws.send(AcceptConnection(subprotocol="sip")))
            self._ws_open = True
            self._server.opened(self)
        elif isinstance(event, TextMessage):
            self._server.feed(event.data.encode("utf-8", "surrogateescape"), self.flow)
        elif isinstance(event, BytesMessage):
            self._server.feed(bytes(event.data), self.flow)
        elif isinstance(event, Ping):
            write(ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            write(ws.send(event.response()))
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.flow.connection:
            self._server.closed(self)
