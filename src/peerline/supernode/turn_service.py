"""TURN in `peerline serve`: the asyncio adapter of `peerline.turn.server.TurnServer`.

It owns what the core may not: relay sockets, the timer, and the way back to
each client (a listener's UDP socket or the client's TCP/TLS connection). It
shares the STUN ports: `front` puts it in front of the Binding service, sending
ChannelData (first byte 0x40-0x7F) and every non-Binding STUN method here.

Relay sockets are plain non-blocking sockets watched with `loop.add_reader`
rather than asyncio transports: a readable relay is drained in one callback
(up to a batch of datagrams) with `recvfrom`, and datagrams to peers leave with
one `sendto` each, without an asyncio transport's buffering or per-packet
bookkeeping in between. A full socket buffer drops the datagram, as UDP may.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
import resource
import socket
import time
from collections.abc import Callable
from typing import NamedTuple

from peerline.net import Address
from peerline.ratelimit import RateLimit
from peerline.supernode.config import ServeConfig
from peerline.supernode.transports import (
    DatagramHandler,
    Reply,
    StreamConnection,
    StreamListener,
    Transport,
    UdpRegistry,
)
from peerline.supernode.turn_tcp import TcpRelaySockets
from peerline.turn.allocation import (
    Allocation,
    BindData,
    ClientKey,
    ClosePeer,
    CloseRelays,
    ConnectPeer,
    OpenRelays,
    ToClient,
)
from peerline.turn.auth import Credentials
from peerline.turn.config import TurnConfig
from peerline.turn.policy import PeerPolicy
from peerline.turn.server import TurnServer
from peerline.users import User, parse_user, read_users_file

log = logging.getLogger(__name__)

_BATCH = 64
_RELAY_BUFFER = 1 << 20
_EVEN_PORT_TRIES = 64
_EVEN_LOW = 49152  # RFC 8656 §7.2: relayed ports come from the dynamic range
_random = random.SystemRandom()
_IP_PMTUDISC_DO = 2  # Linux: always set DF (what DONT-FRAGMENT asks for)

RelaySocket = socket.socket


#: The client key's transport name as one plain string object per transport: a key
#: built per packet then hashes and compares without `str()` or an Enum's `__eq__`.
_KIND = {transport: str(transport) for transport in Transport}


class _Route(NamedTuple):
    """The way back to one client: over UDP the listening socket's `sendto` and the
    client's address, over a stream the connection's `write`."""

    sendto: Callable[[bytes, Address], None] | None
    destination: Address
    write: Callable[[bytes], None] | None

    def send(self, data: bytes) -> None:
        if self.sendto is not None:
            self.sendto(data, self.destination)
        elif self.write is not None:
            self.write(data)


class _Relay:
    """The adapter's side of one allocation: its sockets and its client's route."""

    __slots__ = ("alloc", "client", "route", "sockets")

    def __init__(self, client: ClientKey, sockets: list[socket.socket], route: _Route) -> None:
        self.client = client
        self.sockets = sockets
        self.route = route
        self.alloc: Allocation[RelaySocket] | None = None


class TurnService:
    """Relays for the clients of one supernode; see the module docstring."""

    def __init__(self, config: TurnConfig, credentials: Credentials, udp: UdpRegistry) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._time = loop.time
        now = loop.time()
        self.config = config
        self.core: TurnServer[RelaySocket] = TurnServer(
            config, credentials, now=now, wall_offset=time.time() - now
        )
        self._udp = udp
        self._streams: dict[tuple[Address, str], StreamListener] = {}
        self._relays: dict[ClientKey, _Relay] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        #: RFC 6062: TCP relays' listeners and peer connections.
        self._tcp = TcpRelaySockets(self.core, self._after, self._client_connection)
        _raise_open_files(config.max_allocations)

    # -- wiring -------------------------------------------------------------------------

    def add_stream_listener(self, listener: StreamListener) -> None:
        """Let relayed data reach clients on this listener's connections."""
        self._streams[(listener.local, _KIND[listener.transport])] = listener

    def front(self, stun: DatagramHandler) -> DatagramHandler:
        """A handler for the STUN ports: Binding to `stun`, the rest to TURN.

        ChannelData (first byte 0x40-0x7F) is the relay's hot path: it goes from here
        straight to the core's channel lookup and out of the relay socket, with no
        STUN parsing and no other call in between."""
        turn = self.handle
        channel_data = self.core.channel_data
        kind = _KIND

        def handle(
            data: bytes, source: Address, local: Address, transport: Transport, now: float
        ) -> Reply | None:
            if len(data) < 4:
                return stun(data, source, local, transport, now)
            first = data[0]
            if 0x40 <= first <= 0x7F:
                out = channel_data(data, (kind[transport], source, local), now)
                if out is not None:
                    try:  # noqa: SIM105 - contextlib.suppress costs a context manager
                        out[0].sendto(out[1], out[2])
                    except OSError:
                        pass  # buffer full or ICMP error queued: a datagram may be lost
                return None
            if first < 0x40 and (first << 8 | data[1]) & 0x3EEF == 1:
                return stun(data, source, local, transport, now)  # Binding
            return turn(data, source, local, transport, now)

        return handle

    def stream_closed(self, peer: Address, local: Address, transport: Transport) -> None:
        """A TCP/TLS client went away: its allocation goes with it."""
        self.core.client_closed((_KIND[transport], peer, local))
        self._after(self._time())

    # -- client side --------------------------------------------------------------------

    def handle(
        self, data: bytes, source: Address, local: Address, transport: Transport, now: float
    ) -> Reply | None:
        """A STUN message from a client that is not a Binding request."""
        out = self.core.handle_stun(data, (_KIND[transport], source, local), now)
        if out is not None:
            _sendto(out[0], out[1], out[2])
        self._after(now)
        return None

    def _after(self, now: float) -> None:
        """Carry out what the core asked for, then re-arm the timer if it moved."""
        core = self.core
        while actions := core.pop_actions():  # carrying one out may queue more
            for action in actions:
                if isinstance(action, ToClient):
                    self._to_client(action.client, action.data)
                elif isinstance(action, OpenRelays):
                    self._open(action, now)
                elif isinstance(action, CloseRelays):
                    self._close(action)
                elif isinstance(action, ConnectPeer):
                    self._tcp.connect(action)
                elif isinstance(action, BindData):
                    self._tcp.bind(action)
                elif isinstance(action, ClosePeer):
                    self._tcp.close(action)
        deadline = core.get_timer()
        if deadline != self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._deadline = deadline
            self._timer = None if deadline is None else self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        now = self._time()
        self.core.handle_timer(now)
        self._after(now)

    def _route(self, client: ClientKey) -> _Route | None:
        transport, source, local = client
        if transport == Transport.UDP:
            endpoint = self._udp.get(local)
            if endpoint is None or endpoint.transport is None:
                return None
            return _Route(endpoint.transport.sendto, source, None)
        connection = self._client_connection(client)
        return None if connection is None else _Route(None, source, connection.write)

    def _client_connection(self, client: ClientKey) -> StreamConnection | None:
        """The TCP/TLS connection of a stream client, if it is still open."""
        listener = self._streams.get((client[2], client[0]))
        return None if listener is None else listener.connection(client[1])

    def _to_client(self, client: ClientKey, data: bytes) -> None:
        route = self._route(client)
        if route is not None:
            route.send(data)

    # -- relay sockets ------------------------------------------------------------------

    def _open(self, action: OpenRelays[RelaySocket], now: float) -> None:
        route = self._route(action.client)
        if route is None:  # the client's connection closed meanwhile
            self.core.relays_failed(action.token, now)
            return
        opened: list[tuple[int, Address, RelaySocket]] = []
        sockets: list[socket.socket] = []
        reserved: tuple[Address, RelaySocket] | None = None
        try:
            if action.reuse is not None:
                sockets.append(action.reuse[1])
                opened.append((4, action.reuse[0], action.reuse[1]))
            for family, ip in action.addresses[:1] if action.tcp else ():
                listener = TcpRelaySockets.listen(family, ip)
                sockets.append(listener)
                opened.append((family, _name(listener), listener))
            for family, ip in action.addresses if action.reuse is None and not action.tcp else ():
                pair = _bind_relay(family, ip, action)
                sockets.append(pair[0])
                opened.append((family, _name(pair[0]), pair[0]))
                if pair[1] is not None:
                    reserved = (_name(pair[1]), pair[1])
        except OSError as error:
            log.warning("cannot open a relay socket: %s", error)
            for sock in sockets:
                sock.close()
            self.core.relays_failed(action.token, now)
            return
        relay = _Relay(action.client, sockets, route)
        alloc = self.core.relays_opened(action.token, opened, now, reserved=reserved)
        if alloc is None:
            for sock in [*sockets, *([reserved[1]] if reserved else [])]:
                sock.close()
            return
        relay.alloc = alloc
        self._relays[action.client] = relay
        for sock in sockets:
            if action.tcp:
                self._tcp.watch(sock, alloc)
                continue
            self._loop.add_reader(sock.fileno(), self._readable, sock, relay)
        self._pin(action.client, True)

    def _pin(self, client: ClientKey, pinned: bool) -> None:
        """A stream client with an allocation is not closed for idleness (RFC 8656 §3.1)."""
        if client[0] == Transport.UDP:
            return
        connection = self._client_connection(client)
        if connection is not None:
            connection.pin(pinned)

    def _close(self, action: CloseRelays[RelaySocket]) -> None:
        relay = self._relays.get(action.client)
        if relay is not None and relay.sockets == list(action.handles):
            del self._relays[action.client]
            self._pin(action.client, False)
        for sock in action.handles:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()

    def _readable(self, sock: socket.socket, relay: _Relay) -> None:
        """Drain a relay socket: each datagram from a peer goes to the client framed,
        straight from the listening socket's `sendto` (UDP) or on its connection."""
        alloc = relay.alloc
        if alloc is None:
            return
        sendto, client, write = relay.route
        peer_data = self.core.peer_data
        now = self._time()
        recvfrom = sock.recvfrom
        ipv4 = sock.family == socket.AF_INET
        for _ in range(_BATCH):
            try:
                data, peer = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket: the next read goes on
            out = peer_data(alloc, data, peer if ipv4 else peer[:2], now)
            if out is None:
                continue
            if sendto is not None:
                sendto(out, client)
            elif write is not None:
                write(out)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._tcp.close_all()
        for relay in list(self._relays.values()):
            self._close(CloseRelays(relay.client, tuple(relay.sockets)))

    def describe(self) -> list[str]:
        config = self.config
        families = sorted({"IPv6" if ":" in ip else "IPv4" for ip in config.relay_ips})
        quota = f"{config.user_quota} per user, {config.max_allocations} in all"
        bandwidth = f"{config.bandwidth} B/s" if config.bandwidth else "no cap"
        allow = ", ".join(str(net) for net in config.policy.allow) or "none"
        return [
            f"  TURN (RFC 8656) on the STUN ports: realm {config.realm}, UDP relays and "
            f"TCP relays (RFC 6062) over {' and '.join(families)}",
            f"  TURN allocations: {quota}; bandwidth per allocation: {bandwidth}",
            f"  TURN peers: special-purpose ranges denied; allowed anyway: {allow}",
        ]


def _sendto(sock: RelaySocket, data: bytes, peer: Address) -> None:
    try:  # noqa: SIM105 - contextlib.suppress costs a context manager per packet
        sock.sendto(data, peer)
    except OSError:
        pass  # buffer full or ICMP error queued: a datagram may be lost


def _name(sock: socket.socket) -> Address:
    name = sock.getsockname()
    return str(name[0]), int(name[1])


def _relay_socket(family: int, ip: str, port: int, dont_fragment: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RELAY_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _RELAY_BUFFER)
        if dont_fragment and family == 4 and hasattr(socket, "IP_MTU_DISCOVER"):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        sock.bind((ip, port))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_relay(
    family: int, ip: str, action: OpenRelays[RelaySocket]
) -> tuple[socket.socket, socket.socket | None]:
    """A relay socket on a kernel-chosen port, or on a random even port (EVEN-PORT),
    with the next port bound too when the client wants it reserved."""
    if not action.even_port:
        return _relay_socket(family, ip, 0, action.dont_fragment), None
    for _ in range(_EVEN_PORT_TRIES):
        port = _random.randrange(_EVEN_LOW, 65534, 2)
        try:
            sock = _relay_socket(family, ip, port, action.dont_fragment)
        except OSError:
            continue
        if not action.reserve_next:
            return sock, None
        try:
            return sock, _relay_socket(family, ip, port + 1, action.dont_fragment)
        except OSError:
            sock.close()
    raise OSError("no free even port")


#: Descriptors kept for everything that is not a relay socket (listeners, connections).
_SPARE_FILES = 4096


def _raise_open_files(max_allocations: int) -> None:
    """Every allocation holds a relay socket (two with a reserved port): lift the soft
    limit on open files towards the hard one, so the quota, not the limit, says no."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max_allocations + _SPARE_FILES
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-files limit to %d: %s", wanted, error)
    if wanted < max_allocations + _SPARE_FILES:
        log.warning(
            "open-files limit %d is below what %d allocations need", wanted, max_allocations
        )


def turn_settings(config: ServeConfig, ips: list[str]) -> tuple[TurnConfig, Credentials] | None:
    """TURN's configuration from `peerline serve`'s, or None when no credential source
    is given (TURN is never open: without users or a secret it is off)."""
    users: list[User] = []
    if config.users_file is not None:
        users += read_users_file(config.users_file)
    users += [parse_user(text) for text in config.user]
    realm = config.auth_realm
    credentials = Credentials.build(realm, users, config.auth_secret)
    if not credentials.enabled:
        return None
    relay_ips = tuple(ip for ip in ips if not ipaddress.ip_address(ip).is_link_local)
    turn = TurnConfig(
        realm=realm,
        relay_ips=relay_ips,
        policy=PeerPolicy.build(config.allow_peer, ips),
        max_allocations=config.turn_max_allocations,
        user_quota=config.turn_user_quota,
        bandwidth=config.turn_bandwidth,
        software=config.software,
    )
    if not config.rate_limit.enabled:
        # `--rate 0` means no per-source limit on anything the node answers (as for SIP);
        # otherwise unauthenticated TURN requests keep their own, stricter budget.
        turn = dataclasses.replace(turn, unauthenticated_limit=RateLimit(rate=0))
    return turn, credentials
