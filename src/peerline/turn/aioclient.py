"""The asyncio adapter of `peerline.turn.client.TurnClient`: sockets, timer, awaitables.

One `AsyncTurnClient` owns one socket to the server (UDP, or a TCP/TLS stream)
and feeds the sans-IO client. API calls that wait for the server return when
the matching event arrives; relayed data is read with `recv()` from a bounded
queue (a reader that falls behind loses datagrams, as UDP would).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

from peerline.errors import PeerlineError
from peerline.net import Address
from peerline.stun import Transport
from peerline.turn.client import (
    Allocated,
    AllocationFailed,
    ChannelBound,
    ClientConfig,
    Closed,
    DataReceived,
    Event,
    PermissionCreated,
    Redirected,
    RequestFailed,
    TurnClient,
)

_QUEUE = 1024


class TurnError(PeerlineError):
    """The server refused (or never answered) what was asked."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class _Link(asyncio.Protocol, asyncio.DatagramProtocol):
    """Bytes from the server, whatever the transport, into the client."""

    def __init__(self, owner: AsyncTurnClient) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if (str(addr[0]), int(addr[1])) == self._owner.core.server:
            self._owner._received(data)

    def data_received(self, data: bytes) -> None:
        self._owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors: retransmissions and timeouts decide


class AsyncTurnClient:
    """One allocation, driven on the running event loop."""

    def __init__(self, config: ClientConfig, *, tls: ssl.SSLContext | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.core = TurnClient(config, self._loop.time())
        self.config = config
        self._tls = tls
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._waiters: dict[object, asyncio.Future[Event]] = {}
        self._data: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue(_QUEUE)
        self.allocation: Allocated | None = None

    # -- lifetime --------------------------------------------------------------------

    async def _connect(self, server: Address) -> None:
        if self._transport is not None:
            self._transport.close()
        transport: asyncio.BaseTransport
        if self.config.transport is Transport.UDP:
            local = ("::", 0) if ":" in server[0] else ("0.0.0.0", 0)
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Link(self), local_addr=local
            )
        else:
            tls = self._tls
            if self.config.transport is Transport.TLS and tls is None:
                tls = ssl.create_default_context()
            if self.config.transport is not Transport.TLS:
                tls = None
            transport, _ = await self._loop.create_connection(
                lambda: _Link(self),
                server[0],
                server[1],
                ssl=tls,
                server_hostname=server[0] if tls else None,
            )
        self._transport = transport

    async def allocate(self, timeout: float = 40.0) -> Allocated:
        """Connect, allocate (401 challenge, 438, 300 handled), and return the relay."""
        await self._connect(self.core.server)
        waiter = self._wait("allocation")
        self.core.allocate(self._loop.time())
        self._pump()
        async with asyncio.timeout(timeout):
            while True:
                event = await waiter
                if isinstance(event, Redirected):
                    waiter = self._wait("allocation")
                    await self._connect(event.server)
                    self._pump()
                    continue
                if isinstance(event, Allocated):
                    self.allocation = event
                    return event
                assert isinstance(event, AllocationFailed)
                raise TurnError(f"allocation failed: {event.reason}", event.code)

    async def create_permission(self, peer_ip: str, timeout: float = 10.0) -> None:
        waiter = self._wait(("permission", peer_ip))
        self.core.create_permission(peer_ip, self._loop.time())
        self._pump()
        await self._outcome(waiter, timeout, f"permission for {peer_ip}")

    async def bind_channel(self, peer: Address, timeout: float = 10.0) -> int:
        waiter = self._wait(("channel", peer))
        number = self.core.bind_channel(peer, self._loop.time())
        self._pump()
        await self._outcome(waiter, timeout, f"channel to {peer}")
        return number

    def send(self, data: bytes, peer: Address) -> None:
        """Relay `data` to `peer` now (ChannelData once its channel is bound)."""
        self._write(self.core.wrap(data, peer))

    async def recv(self) -> tuple[bytes, Address]:
        """The next datagram a peer sent through the relay: (data, peer)."""
        return await self._data.get()

    async def close(self, timeout: float = 5.0) -> None:
        """Deallocate (Refresh lifetime 0), then close the socket."""
        waiter = self._wait("closed")
        self.core.close(self._loop.time())
        self._pump()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._transport is not None:
                self._transport.close()

    # -- plumbing ----------------------------------------------------------------------

    def _wait(self, key: object) -> asyncio.Future[Event]:
        future: asyncio.Future[Event] = self._loop.create_future()
        self._waiters[key] = future
        return future

    async def _outcome(self, waiter: asyncio.Future[Event], timeout: float, what: str) -> None:
        async with asyncio.timeout(timeout):
            event = await waiter
        if isinstance(event, RequestFailed):
            raise TurnError(f"{what} refused", event.code)

    def _resolve(self, key: object, event: Event) -> None:
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(event)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self.config.transport is Transport.UDP:
            cast(asyncio.DatagramTransport, transport).sendto(data, self.core.server)
        else:
            cast(asyncio.Transport, transport).write(data)

    def _received(self, data: bytes) -> None:
        self.core.receive(data, self._loop.time())
        self._pump()

    def _lost(self) -> None:
        if self.config.transport.reliable and self.core.state.value in ("allocated", "allocating"):
            self.core.close(self._loop.time())  # a stream allocation dies with its connection
            self._pump()

    def _pump(self) -> None:
        core = self.core
        for data in core.datagrams_to_send(self._loop.time()):
            self._write(data)
        while (event := core.next_event()) is not None:
            if isinstance(event, DataReceived):
                if not self._data.full():
                    self._data.put_nowait((event.data, event.peer))
            elif isinstance(event, Allocated | AllocationFailed | Redirected):
                self._resolve("allocation", event)
            elif isinstance(event, PermissionCreated):
                self._resolve(("permission", event.peer_ip), event)
            elif isinstance(event, ChannelBound):
                self._resolve(("channel", event.peer), event)
            elif isinstance(event, RequestFailed):
                kind = "channel" if event.method.name == "CHANNEL_BIND" else "permission"
                self._resolve((kind, event.peer if kind == "channel" else event.peer[0]), event)
            elif isinstance(event, Closed):
                self._resolve("closed", event)
                self._resolve("allocation", AllocationFailed(code=None, reason="closed"))
        deadline = core.get_timer()
        if deadline != self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._deadline = deadline
            self._timer = None if deadline is None else self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        self.core.handle_timer(self._loop.time())
        self._pump()
