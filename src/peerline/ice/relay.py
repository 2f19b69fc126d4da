"""A TURN allocation as the ICE adapter uses it: relayed candidates and their traffic.

Over UDP the allocation runs on one of the ICE host sockets (the adapter hands
every datagram that comes from the TURN server on that socket to `feed`), so
the XOR-MAPPED-ADDRESS it learns is that socket's server-reflexive address and
needs no STUN request of its own. Over TCP or TLS (`turn:...?transport=tcp`,
`turns:`) it has its own stream to the server.

What ICE sends from the relayed base goes through `send`: the first datagram
to a new peer IP asks the server for a permission and waits (a short, bounded
queue) until it is granted, since the server would drop it before. The pair
ICE selects gets a channel (`bind_channel`), so that data then flows as 4-byte
ChannelData headers rather than 36-byte Send indications. The sans-IO
`TurnClient` does the protocol; this file only moves its bytes and keeps its
one timer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from peerline.aio import DeadlineTimer
from peerline.errors import PeerlineError
from peerline.ice.gather import TurnServer
from peerline.net import Address
from peerline.stun import Method, TransactionConfig, Transport
from peerline.turn.client import (
    Allocated,
    AllocationFailed,
    ChannelBound,
    ClientConfig,
    Closed,
    DataReceived,
    PermissionCreated,
    Redirected,
    RequestFailed,
    State,
    TurnClient,
)

logger = logging.getLogger(__name__)

_QUEUED_PER_PEER = 32
"""Datagrams kept per peer IP while its permission is being created (checks
retransmit anyway; this only saves the first round trip)."""


class RelayError(PeerlineError):
    """The TURN server refused the allocation or never answered."""


class _Stream(asyncio.Protocol):
    def __init__(self, link: RelayLink) -> None:
        self._link = link

    def data_received(self, data: bytes) -> None:
        self._link.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.stream_lost()


class RelayLink:
    """One allocation on one TURN server; see the module docstring.

    `base` is the host socket a UDP allocation shares, and `write_udp(data,
    server)` sends over it (None for TCP/TLS, which open their own stream);
    `on_data(link, data, peer)` receives what peers send to the relayed
    address; `on_lost(link, reason)` says the allocation is gone.
    """

    def __init__(
        self,
        server: TurnServer,
        address: Address,
        *,
        base: Address | None,
        write_udp: Callable[[bytes, Address], None] | None,
        on_data: Callable[[RelayLink, bytes, Address], None],
        on_lost: Callable[[RelayLink, str], None],
        timeout: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.base = base
        rto = min(0.5, timeout / 4)
        config = ClientConfig(
            server=address,
            username=server.username,
            password=server.password,
            transport=server.transport,
            family=server.family,
            transaction=TransactionConfig(rto=rto, ti=timeout),
        )
        self.core = TurnClient(config, self._loop.time())
        self._write_udp = write_udp
        self._on_data = on_data
        self._on_lost = on_lost
        self._stream: asyncio.Transport | None = None
        self._timer = DeadlineTimer(self._loop, self._fire)
        self._allocated: asyncio.Future[Allocated] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._permitted: set[str] = set()
        self._refused: set[str] = set()
        self._waiting: dict[str, list[tuple[bytes, Address]]] = {}
        self._channels: set[Address] = set()

    @property
    def server_address(self) -> Address:
        """Where the server is now (a 300 Try Alternate may have moved it)."""
        return self.core.server

    @property
    def relayed(self) -> Address | None:
        return self.core.relayed

    # -- lifetime ---------------------------------------------------------------------

    async def allocate(self, timeout: float) -> Allocated:
        """Connect (streams), allocate, and return the relayed and mapped addresses."""
        async with asyncio.timeout(timeout):
            if self.server.transport.reliable:
                await self._connect()
            self.core.allocate(self._loop.time())
            self._pump()
            return await asyncio.shield(self._allocated)

    async def _connect(self) -> None:
        tls: ssl.SSLContext | None = None
        if self.server.transport is Transport.TLS:
            tls = ssl.create_default_context()
            if not self.server.verify_tls:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        host, port = self.core.server
        transport, _ = await self._loop.create_connection(
            lambda: _Stream(self),
            host,
            port,
            ssl=tls,
            server_hostname=(self.server.server_name or self.server.host) if tls else None,
        )
        self._stream = transport

    async def close(self, timeout: float = 2.0) -> None:
        """Deallocate (Refresh with lifetime 0) and wait for the answer, briefly."""
        self.core.close(self._loop.time())
        self._pump()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._closed)
        except TimeoutError:
            logger.debug("TURN server %s did not confirm deallocation", self.server)
        finally:
            self._timer.cancel()
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if not self._allocated.done():
                self._allocated.cancel()

    # -- bytes ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the server (one datagram, or a piece of the stream)."""
        self.core.receive(data, self._loop.time())
        self._pump()

    def stream_lost(self) -> None:
        """A stream allocation dies with its stream (RFC 8656 §3.1)."""
        if self.core.state is State.ALLOCATED:
            self._on_lost(self, "connection to the TURN server lost")
        if self.core.state in (State.ALLOCATED, State.ALLOCATING):
            self._stream = None
            self.core.close(self._loop.time())
            self._pump()

    def permit(self, peer_ip: str) -> None:
        """Let `peer_ip` reach the relayed address (before its checks arrive)."""
        if self.core.state is not State.ALLOCATED or peer_ip in self._waiting:
            return
        if peer_ip in self._permitted or peer_ip in self._refused:
            return
        if (":" in peer_ip) != (":" in (self.core.relayed or ("", 0))[0]):
            return  # another family: the relay cannot reach it
        self._waiting[peer_ip] = []
        self.core.create_permission(peer_ip, self._loop.time())
        self._pump()

    def send(self, data: bytes, peer: Address) -> None:
        """Relay one datagram to `peer`, asking for its permission first if needed."""
        ip = peer[0]
        if ip in self._permitted:
            self._write(self.core.wrap(data, peer))
            return
        if ip in self._refused or self.core.state is not State.ALLOCATED:
            return
        self.permit(ip)
        queue = self._waiting.get(ip)
        if queue is not None and len(queue) < _QUEUED_PER_PEER:
            queue.append((data, peer))

    def bind_channel(self, peer: Address) -> None:
        """Carry what goes to `peer` as ChannelData from now on (once bound)."""
        if self.core.state is State.ALLOCATED and peer not in self._channels:
            self._channels.add(peer)
            self.core.bind_channel(peer, self._loop.time())
            self._pump()

    # -- plumbing ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._write_udp is not None:
            self._write_udp(data, self.core.server)
        elif self._stream is not None and not self._stream.is_closing():
            self._stream.write(data)

    def _pump(self) -> None:
        core = self.core
        for data in core.datagrams_to_send(self._loop.time()):
            self._write(data)
        while (event := core.next_event()) is not None:
            match event:
                case DataReceived(peer=peer, data=data):
                    self._on_data(self, data, peer)
                case Allocated():
                    if not self._allocated.done():
                        self._allocated.set_result(event)
                case AllocationFailed(code=code, reason=reason):
                    self._fail(f"{reason} ({code})" if code else reason)
                case Redirected(server=elsewhere):
                    if self.server.transport.reliable:  # UDP just writes to the new server
                        core.close(self._loop.time())
                        self._fail(f"redirected to {elsewhere}: not followed over a stream")
                case PermissionCreated(peer_ip=ip):
                    self._permitted.add(ip)
                    for data, peer in self._waiting.pop(ip, []):
                        self._write(core.wrap(data, peer))
                case RequestFailed(method=method, peer=peer, code=code):
                    if method == Method.CREATE_PERMISSION:
                        logger.info("TURN %s refused %s (%s)", self.server, peer[0], code)
                        self._waiting.pop(peer[0], None)
                        self._refused.add(peer[0])
                    else:
                        self._channels.discard(peer)
                case ChannelBound():
                    pass
                case Closed():
                    if not self._closed.done():
                        self._closed.set_result(None)
                    self._fail("closed")
        self._timer.set(core.get_timer())

    def _fail(self, reason: str) -> None:
        if not self._allocated.done():
            self._allocated.set_exception(RelayError(f"TURN {self.server}: {reason}"))
            self._allocated.exception()  # retrieved: allocate() may have given up already
        elif reason != "closed":  # Closed follows our deallocation or a failure told already
            self._on_lost(self, reason)

    def _fire(self, now: float) -> None:
        self.core.handle_timer(now)
        self._pump()
