"""RFC 6062 TCP relays in `peerline serve`: the sockets behind `peerline.turn.tcp_relay`.

Each TCP allocation has a listening socket on its relayed address; each peer
connection is a plain non-blocking socket watched with `add_reader`/`add_writer`
(no asyncio transport: peers never speak TLS, and the splice is two buffers).
Outgoing connections to peers bind the relayed address itself, which the
listener shares through SO_REUSEPORT, set only after the listener got its
port so that no other socket can ever be handed the same one.

Once bound, bytes are copied both ways with backpressure instead of loss: when
the client's send buffer fills, the peer is no longer read (its TCP window
closes); when the peer's does, the client connection is paused. The
allocation's bandwidth budget holds the same way: a side that overspent it is
not read until it has refilled. A peer that
connected before ConnectionBind is not read at all until then, so its data waits
in the kernel, as RFC 6062 §5.3 asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from peerline.net import Address
from peerline.supernode.transports import StreamConnection
from peerline.turn.allocation import Allocation, BindData, ClosePeer, ConnectPeer
from peerline.turn.server import TurnServer

log = logging.getLogger(__name__)

#: Bytes waiting for a slow peer before the client connection is paused.
_HIGH_WATER = 256 * 1024
_READ_SIZE = 65536
_BACKLOG = 16
_ACCEPT_BATCH = 16
#: After accept() fails (no descriptors left), the listener rests this long (seconds).
_ACCEPT_PAUSE = 1.0


class _PeerLink:
    """One peer TCP connection and, once bound, the client connection spliced to it."""

    __slots__ = (
        "client",
        "client_done",
        "client_full",
        "client_throttled",
        "id",
        "peer_done",
        "peer_throttled",
        "pending",
        "reading",
        "sock",
    )

    def __init__(self, connection_id: int, sock: socket.socket) -> None:
        self.id = connection_id
        self.sock = sock
        self.client: StreamConnection | None = None
        #: Bytes from the client the peer has not taken yet.
        self.pending = bytearray()
        self.reading = False
        #: Each side's end of stream (a half close is passed on to the other side).
        self.client_done = False
        self.peer_done = False
        #: Why a side is not read: the client's send buffer is full; a side's bytes
        #: went over the allocation's bandwidth budget and it waits for it to refill.
        self.client_full = False
        self.peer_throttled = False
        self.client_throttled = False


class TcpRelaySockets:
    """Listeners, peer connections and splices of every TCP allocation of one server."""

    def __init__(
        self,
        core: TurnServer[socket.socket],
        after: Callable[[float], None],
        client_connection: Callable[[tuple[str, Address, Address]], StreamConnection | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._time = loop.time
        self._core = core
        self._after = after
        self._client_connection = client_connection
        self._links: dict[int, _PeerLink] = {}

    # -- listeners -----------------------------------------------------------------------

    @staticmethod
    def listen(family: int, ip: str) -> socket.socket:
        """A listening socket on a fresh port of `ip`, shareable only by our own
        outgoing connections (SO_REUSEPORT after the port is ours)."""
        sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((ip, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.listen(_BACKLOG)
        except OSError:
            sock.close()
            raise
        return sock

    def watch(self, listener: socket.socket, alloc: Allocation[socket.socket]) -> None:
        self._loop.add_reader(listener.fileno(), self._accept, listener, alloc)

    def _rewatch(self, listener: socket.socket, alloc: Allocation[socket.socket]) -> None:
        if listener.fileno() >= 0 and not alloc.dead:
            self.watch(listener, alloc)

    def _accept(self, listener: socket.socket, alloc: Allocation[socket.socket]) -> None:
        now = self._time()
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:  # out of descriptors, most likely: wait a little
                log.warning("accept on a TCP relay: %s", error)
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(_ACCEPT_PAUSE, self._rewatch, listener, alloc)
                break
            sock.setblocking(False)
            connection_id = self._core.tcp.peer_accepted(alloc, (address[0], address[1]), now)
            if connection_id is None:
                sock.close()  # RFC 6062 §5.3: no permission, closed at once
                continue
            self._links[connection_id] = _PeerLink(connection_id, sock)
        self._after(now)

    # -- the core's actions ----------------------------------------------------------------

    def connect(self, action: ConnectPeer[socket.socket]) -> None:
        """Open a connection from the relayed address to the peer, without blocking."""
        family = socket.AF_INET6 if ":" in action.peer[0] else socket.AF_INET
        try:
            sock = socket.socket(family)
        except OSError as error:  # out of descriptors: the Connect fails, nothing else
            log.warning("cannot open a TCP relay connection: %s", error)
            self._core.tcp.peer_connect_failed(action.connection)
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(action.relay)
            code = sock.connect_ex(action.peer)
        except OSError as error:
            code = error.errno or errno.EINVAL
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._core.tcp.peer_connect_failed(action.connection)
            return
        link = _PeerLink(action.connection, sock)
        self._links[action.connection] = link
        self._loop.add_writer(sock.fileno(), self._connected, link)

    def _connected(self, link: _PeerLink) -> None:
        self._loop.remove_writer(link.sock.fileno())
        error = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        now = self._time()
        if error or not self._core.tcp.peer_connected(link.id, now):
            self._links.pop(link.id, None)
            link.sock.close()
            if error:
                self._core.tcp.peer_connect_failed(link.id)
        self._after(now)

    def bind(self, action: BindData) -> None:
        """Splice the client data connection to its peer connection."""
        link = self._links.get(action.connection)
        client = self._client_connection(action.client)
        if link is None or client is None:
            self._core.tcp.peer_closed(action.connection)
            if link is not None:
                self._drop(link)
            return
        link.client = client
        client.divert(_ClientSide(self, link))
        self._update_peer(link)

    def close(self, action: ClosePeer) -> None:
        link = self._links.get(action.connection)
        if link is not None:
            self._drop(link)

    def close_all(self) -> None:
        for link in list(self._links.values()):
            self._drop(link)

    def _drop(self, link: _PeerLink) -> None:
        """Close both ends: the client's after what it was already sent, the peer's after
        one last try at what it has not taken yet."""
        self._links.pop(link.id, None)
        fd = link.sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            if link.pending:
                with contextlib.suppress(OSError):
                    link.sock.send(link.pending)
        link.sock.close()
        if link.client is not None:
            link.client.finish()
            link.client = None

    # -- the splice ----------------------------------------------------------------------

    def _update_peer(self, link: _PeerLink) -> None:
        """Read the peer while it has a client to go to and nothing holds it back."""
        on = link.client is not None and not (
            link.peer_done or link.client_full or link.peer_throttled
        )
        if on != link.reading and link.sock.fileno() >= 0:
            link.reading = on
            if on:
                self._loop.add_reader(link.sock.fileno(), self._peer_readable, link)
            else:
                self._loop.remove_reader(link.sock.fileno())

    def _update_client(self, link: _PeerLink) -> None:
        """Read the client while the peer keeps up and the budget holds."""
        if link.client is not None:
            if len(link.pending) > _HIGH_WATER or link.client_throttled:
                link.client.pause_reading()
            else:
                link.client.resume_reading()

    def _throttle(self, link: _PeerLink, peer: bool, throttled: bool) -> None:
        """Hold back (or let go) the peer side or the client side of `link`."""
        if peer:
            link.peer_throttled = throttled
            self._update_peer(link)
        else:
            link.client_throttled = throttled
            self._update_client(link)

    def _unthrottle(self, link: _PeerLink, peer: bool) -> None:
        if link.id in self._links:
            self._throttle(link, peer, False)

    def _charge(self, link: _PeerLink, n: int, peer: bool) -> None:
        """Hold back the side that sent `n` bytes while the allocation's budget refills."""
        delay = self._core.tcp.charge(link.id, n, self._time())
        if delay <= 0:
            return
        self._throttle(link, peer, True)
        self._loop.call_later(delay, self._unthrottle, link, peer)

    def _peer_readable(self, link: _PeerLink) -> None:
        client = link.client
        try:
            data = link.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data and client is not None and not link.client_done:
            link.peer_done = True  # a half close: the client may still send
            self._update_peer(link)
            client.finish_writing()
            return
        if not data or client is None:
            self._end(link)
            return
        self._core.stats.bytes_from_peers += len(data)
        client.write(data)
        self._charge(link, len(data), peer=True)

    def _end(self, link: _PeerLink) -> None:
        """Both sides are done, or one failed: the connection is over."""
        self._core.tcp.peer_closed(link.id)
        self._drop(link)
        self._after(self._time())

    def client_eof(self, link: _PeerLink) -> None:
        """The client will send nothing more: pass it on once the peer has it all."""
        if link.id not in self._links:
            return
        link.client_done = True
        if link.peer_done:
            self._end(link)
        elif not link.pending:
            with contextlib.suppress(OSError):
                link.sock.shutdown(socket.SHUT_WR)

    def client_data(self, link: _PeerLink, data: bytes) -> None:
        if link.id not in self._links:  # closed meanwhile: the client is closing too
            return
        self._core.stats.bytes_to_peers += len(data)
        self._charge(link, len(data), peer=False)
        if link.pending:
            link.pending += data
        else:
            try:
                sent = link.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._end(link)
                return
            if sent == len(data):
                return
            link.pending += data[sent:]
            self._loop.add_writer(link.sock.fileno(), self._peer_writable, link)
        self._update_client(link)

    def _peer_writable(self, link: _PeerLink) -> None:
        try:
            sent = link.sock.send(link.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._end(link)
            return
        del link.pending[:sent]
        if not link.pending:
            self._loop.remove_writer(link.sock.fileno())
            if link.client_done:
                with contextlib.suppress(OSError):
                    link.sock.shutdown(socket.SHUT_WR)
            else:
                self._update_client(link)

    def pause_peer(self, link: _PeerLink, paused: bool) -> None:
        """The client's send buffer filled (or drained): stop (or resume) reading the peer."""
        if link.id in self._links:
            link.client_full = paused
            self._update_peer(link)


class _ClientSide:
    """The client data connection's view of its splice (a `StreamSink`)."""

    __slots__ = ("_link", "_sockets")

    def __init__(self, sockets: TcpRelaySockets, link: _PeerLink) -> None:
        self._sockets = sockets
        self._link = link

    def data(self, data: bytes) -> None:
        self._sockets.client_data(self._link, data)

    def eof(self) -> None:
        self._sockets.client_eof(self._link)

    def pause_writing(self) -> None:
        self._sockets.pause_peer(self._link, True)

    def resume_writing(self) -> None:
        self._sockets.pause_peer(self._link, False)
