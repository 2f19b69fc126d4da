"""The asyncio face of a peer session: QUIC over a `DatagramPath`, for applications.

`PeerSession` is the thin adapter around `SessionCore`: it is the path's
`PathListener`, reads the loop's clock, keeps one timer armed, sends what the
core has through `path.send`, and turns the core's events into awaitables:

    session = PeerSession(path, role=SessionRole.CLIENT, identity=me, peer_fingerprint=theirs)
    ice_adapter.listener = session        # whoever owns the path feeds it
    await session.connect(timeout=10)
    reader, writer = await session.open_stream()   # the peer: await session.accept_stream()
    await session.send_message(b"hello")           # the peer: await session.receive_message()
    await session.close()

When the session ends (either side closes, the path is lost, QUIC idles out,
the fingerprint does not match) every waiter gets `SessionClosed` with the
`EndReason`, and `await session.wait_ended()` returns the `Ended` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from peerline.aio import DeadlineTimer
from peerline.session.config import SessionConfig, SessionRole
from peerline.session.core import CloseCode, SessionCore, SessionState
from peerline.session.errors import EndReason, SessionClosed, SessionUsageError, StreamReset
from peerline.session.events import (
    Connected,
    Ended,
    IncomingStream,
    MessageReceived,
    StreamAborted,
    StreamData,
)
from peerline.session.identity import Fingerprint, Identity
from peerline.session.path import DatagramPath, PathInfo
from peerline.session.streams import QuicStreamTransport

log = logging.getLogger(__name__)

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PeerSession:
    """A QUIC session with one peer over one ICE path, pinned to the peer's fingerprint.

    Build it inside the running event loop. It is the path's listener from the
    start: a server side handles the client's first packets even before
    `connect()` is awaited.
    """

    def __init__(
        self,
        path: DatagramPath,
        *,
        role: SessionRole,
        identity: Identity,
        peer_fingerprint: Fingerprint,
        config: SessionConfig | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._path = path
        self.config = config or SessionConfig()
        self._log = logging.LoggerAdapter(
            log, {"session": f"{role.value}->{peer_fingerprint.hex[:11]}"}
        )
        self._core = SessionCore(
            role=role,
            identity=identity,
            peer_fingerprint=peer_fingerprint,
            config=self.config,
            logger=self._log,
        )
        self.path_info: PathInfo | None = path.describe()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._ended: asyncio.Future[Ended] = self._loop.create_future()
        self._started = False
        self._timer = DeadlineTimer(self._loop, self._on_timer)
        self._transmit_handle: asyncio.Handle | None = None
        self._streams: dict[int, QuicStreamTransport] = {}
        self._incoming: deque[StreamPair] = deque()
        self._messages: deque[bytes] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        """Woken after every batch of events (accept, receive, message drain)."""

    # -- state ---------------------------------------------------------------------------

    @property
    def role(self) -> SessionRole:
        return self._core.role

    @property
    def state(self) -> SessionState:
        return self._core.state

    @property
    def ended(self) -> Ended | None:
        """Why the session ended, or None while it lasts."""
        return self._ended.result() if self._ended.done() else None

    async def wait_ended(self) -> Ended:
        return await asyncio.shield(self._ended)

    # -- the application's API -----------------------------------------------------------

    async def connect(self, timeout: float) -> None:
        """Complete the handshake (and the fingerprint check) within `timeout` seconds."""
        if not self._started:
            self._started = True
            self._core.start(self._loop.time())
            self._transmit_now()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._connected)
        except TimeoutError:
            self._core.abort(EndReason.CONNECT_TIMEOUT, f"{timeout:g} s")
            self._after_input()
            raise self._closed_error() from None

    async def open_stream(self) -> StreamPair:
        """A new reliable byte stream to the peer; it sees it with `accept_stream()`."""
        self._check_open()
        transport = self._new_stream(self._core.open_stream())
        return transport.reader, transport.writer

    async def accept_stream(self) -> StreamPair:
        """The next stream the peer opened."""
        while not self._incoming:
            await self._wait_for_events()
        return self._incoming.popleft()

    async def send_message(self, data: bytes) -> None:
        """Send one message (reliable, in order); waits while too much is unacknowledged."""
        self._check_open()
        self._core.send_message(bytes(data))
        self._transmit_soon()
        if self._core.messages_unacknowledged() > self.config.write_high_water:
            while self._core.messages_unacknowledged() > self.config.write_low_water:
                await self._wait_for_events()

    async def receive_message(self) -> bytes:
        """The next message from the peer."""
        while not self._messages:
            await self._wait_for_events()
        message = self._messages.popleft()
        if len(self._messages) <= self.config.message_queue // 2:
            self._core.pause_messages(False)
            self._transmit_soon()
        return message

    async def close(self, linger: float = 5.0) -> None:
        """Close cleanly: wait up to `linger` s for what was written to be acknowledged."""
        if self._core.state is SessionState.CONNECTED:
            with contextlib.suppress(TimeoutError, SessionClosed):
                async with asyncio.timeout(linger):
                    while self._core.unacknowledged() > 0:
                        await self._wait_for_events()
        self._core.close()
        self._after_input()

    # -- PathListener ----------------------------------------------------------------------

    def datagram_received(self, data: bytes) -> None:
        self._core.receive_datagram(data, self._loop.time())
        self._after_input(soon=True)

    def path_changed(self, info: PathInfo) -> None:
        self._log.info("path changed: %s", info)
        self.path_info = info
        self._core.path_changed()
        self._transmit_soon()

    def path_lost(self, reason: str) -> None:
        self._log.warning("path lost: %s", reason)
        self.path_info = None
        self._core.path_lost(reason)
        self._after_input()

    # -- StreamOwner (for QuicStreamTransport) ---------------------------------------------

    def stream_write(self, stream_id: int, data: bytes, *, end_stream: bool) -> None:
        self._check_open()
        self._core.send_stream_data(stream_id, data, end_stream=end_stream)
        self._transmit_soon()

    def stream_reset(self, stream_id: int) -> None:
        if self._core.state is SessionState.CONNECTED:
            self._core.reset_stream(stream_id, CloseCode.CANCELLED)
            self._transmit_soon()

    def stream_unacknowledged(self, stream_id: int) -> int:
        return self._core.unacknowledged(stream_id)

    def stream_pause_reading(self, stream_id: int, paused: bool) -> None:
        self._core.pause_stream(stream_id, paused)
        if not paused:
            self._transmit_soon()

    # -- internals -------------------------------------------------------------------------

    def _new_stream(self, stream_id: int) -> QuicStreamTransport:
        transport = QuicStreamTransport(
            self,
            stream_id,
            high_water=self.config.write_high_water,
            low_water=self.config.write_low_water,
            read_limit=self.config.read_buffer,
            loop=self._loop,
        )
        self._streams[stream_id] = transport
        return transport

    def _check_open(self) -> None:
        if self._core.state is SessionState.ENDED:
            raise self._closed_error()
        if self._core.state is not SessionState.CONNECTED:
            raise SessionUsageError("the session is not connected yet: await connect() first")

    def _closed_error(self) -> SessionClosed:
        ended = self.ended
        if ended is None:
            return SessionClosed(EndReason.LOCAL_CLOSE, "ending")
        return SessionClosed(ended.reason, ended.detail)

    async def _wait_for_events(self) -> None:
        """Wait for the next batch of events; `SessionClosed` once the session is over."""
        if self._ended.done():
            raise self._closed_error()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if self._ended.done():
            raise self._closed_error()

    def _after_input(self, *, soon: bool = False) -> None:
        self._process_events()
        if soon:
            self._transmit_soon()
        else:
            self._transmit_now()

    def _process_events(self) -> None:
        core = self._core
        while (event := core.next_event()) is not None:
            if isinstance(event, StreamData):
                transport = self._streams.get(event.stream_id)
                if transport is not None:
                    transport.data_received(event.data, event.end_stream)
            elif isinstance(event, IncomingStream):
                transport = self._new_stream(event.stream_id)
                self._incoming.append((transport.reader, transport.writer))
            elif isinstance(event, MessageReceived):
                self._messages.append(event.data)
                if len(self._messages) >= self.config.message_queue:
                    core.pause_messages(True)
            elif isinstance(event, StreamAborted):
                self._stream_aborted(event)
            elif isinstance(event, Connected):
                if not self._connected.done():
                    self._connected.set_result(None)
            elif isinstance(event, Ended):
                self._session_ended(event)
        for transport in list(self._streams.values()):
            transport.check_write_pressure()
            if transport.finished:
                del self._streams[transport.stream_id]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _stream_aborted(self, event: StreamAborted) -> None:
        transport = self._streams.pop(event.stream_id, None)
        if transport is not None:
            transport.fail(StreamReset(event.stream_id, event.error_code))

    def _session_ended(self, event: Ended) -> None:
        if not self._ended.done():
            self._ended.set_result(event)
        error = SessionClosed(event.reason, event.detail)
        if not self._connected.done():
            self._connected.set_exception(error)
            self._connected.exception()  # retrieved here: connect() re-raises its own copy
        for transport in self._streams.values():
            transport.fail(error)
        self._streams.clear()

    def _transmit_soon(self) -> None:
        if self._transmit_handle is None:
            self._transmit_handle = self._loop.call_soon(self._transmit_now)

    def _transmit_now(self) -> None:
        if self._transmit_handle is not None:
            self._transmit_handle.cancel()
            self._transmit_handle = None
        for datagram in self._core.datagrams_to_send(self._loop.time()):
            self._path.send(datagram)
        self._arm_timer()

    def _arm_timer(self) -> None:
        self._timer.set(self._core.get_timer())

    def _on_timer(self, now: float) -> None:
        self._core.handle_timer(now)
        self._after_input()
