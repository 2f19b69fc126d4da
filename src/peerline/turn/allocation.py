"""The state of one TURN allocation and the server's actions, as plain data.

An `Allocation` is mutable on purpose: it is touched by every relayed packet,
so it is a slotted object whose fields the hot path reads with one attribute
access and one dict lookup each. Everything that crosses the core's boundary
(actions for the adapter) is a frozen dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from peerline.net import Address

#: What the adapter attaches to a relayed transport address (its socket).
H = TypeVar("H")

#: A client's 5-tuple as the adapter sees it: (transport, client address, server address).
#: The protocol (UDP, or TCP for TCP and TLS) is implied by the transport name.
ClientKey = tuple[str, Address, Address]

IPV4 = 4
IPV6 = 6


class Allocation(Generic[H]):
    """One client's relay: relayed addresses, permissions, channels, budget."""

    __slots__ = (
        "bucket_stamp",
        "channel_expiry",
        "channels",
        "client",
        "dead",
        "expires",
        "handles",
        "indications",
        "last_response",
        "mapped",
        "peer_channel",
        "permissions",
        "relays",
        "retired",
        "stream",
        "tcp",
        "tcp_peers",
        "tokens",
        "username",
    )

    def __init__(
        self,
        client: ClientKey,
        username: str,
        *,
        relays: dict[int, Address],
        handles: dict[int, H],
        expires: float,
        now: float,
        burst: float,
        tcp: bool = False,
    ) -> None:
        self.client = client
        self.username = username
        #: IP version (4/6) -> relayed transport address, and the adapter's handle for it.
        self.relays = relays
        self.handles = handles
        self.expires = expires
        self.stream = client[0] != "udp"
        self.mapped: Address = client[1]
        #: peer IP -> expiry time.
        self.permissions: dict[str, float] = {}
        #: channel number -> (peer, relay handle): all the client->peer path needs.
        self.channels: dict[int, tuple[Address, H]] = {}
        self.channel_expiry: dict[int, float] = {}
        #: peer -> channel number (the peer->client path frames with it).
        self.peer_channel: dict[Address, int] = {}
        #: Channel number -> peer and peer -> number of bindings that expired less than
        #: the reuse delay ago: only that same pair may be bound again meanwhile.
        self.retired: dict[int | Address, int | Address] = {}
        #: peer -> the constant part of a Data indication from that peer.
        self.indications: dict[Address, bytes] = {}
        self.tokens = burst
        self.bucket_stamp = now
        #: (transaction id, response bytes) of the last request answered: retransmissions
        #: get the same answer instead of being processed twice.
        self.last_response: tuple[bytes, bytes] | None = None
        self.dead = False
        #: An RFC 6062 TCP allocation: its handle is a listening socket, and its peers
        #: are TCP connections (peer -> connection id) instead of channels.
        self.tcp = tcp
        self.tcp_peers: dict[Address, int] = {}

    def handle_for(self, ip: str) -> H | None:
        """The relay handle of `ip`'s family, if the allocation has one."""
        return self.handles.get(IPV6 if ":" in ip else IPV4)


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send `data` to the client of 5-tuple `client` (from the server address in it)."""

    client: ClientKey
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRelays(Generic[H]):
    """Bind one UDP socket per (IP version, local IP) and report back with
    `TurnServer.relays_opened(token, ...)` or `TurnServer.relays_failed(token, ...)`.

    `even_port`: the port must be even; `reserve_next`: bind port + 1 as well and
    pass it back as `reserved`; `reuse`: no binding, use this reserved socket;
    `tcp`: an RFC 6062 relay, a TCP socket listening for peers instead.
    """

    token: int
    client: ClientKey
    addresses: tuple[tuple[int, str], ...]
    dont_fragment: bool = False
    even_port: bool = False
    reserve_next: bool = False
    reuse: tuple[Address, H] | None = None
    tcp: bool = False


@dataclass(frozen=True, slots=True)
class CloseRelays(Generic[H]):
    """Close these relay handles: the allocation (or port reservation) of `client` is gone."""

    client: ClientKey
    handles: tuple[H, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectPeer(Generic[H]):
    """RFC 6062 Connect: open a TCP connection from `relay` (the relayed address, whose
    listening socket is `listener`) to `peer`, then report with
    `TurnServer.tcp.peer_connected(connection, now)` or `peer_connect_failed(connection)`."""

    connection: int
    listener: H
    relay: Address
    peer: Address


@dataclass(frozen=True, slots=True)
class BindData:
    """RFC 6062 ConnectionBind succeeded: from now on the client connection `client` and
    the peer connection `connection` carry each other's bytes as they are (the answer
    to the ConnectionBind was queued just before this)."""

    connection: int
    client: ClientKey


@dataclass(frozen=True, slots=True)
class ClosePeer:
    """Close the peer TCP connection `connection` and, if bound, its client connection."""

    connection: int


Action = ToClient | OpenRelays[H] | CloseRelays[H] | ConnectPeer[H] | BindData | ClosePeer
