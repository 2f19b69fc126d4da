"""The TURN server core (RFC 8656, RFC 6156 address families), sans I/O.

Fed bytes from clients and peers with the current time, it answers with
actions (`ToClient`, `OpenRelays`, `CloseRelays`) and, on the relay hot path,
with a plain `(relay handle, payload, peer)` or `(allocation, bytes)` tuple so
that a relayed packet costs a few dict lookups and no object but the bytes.

Safety: every request must authenticate (long-term or REST credentials with a
stateless nonce), and nothing is stored before it has; unauthenticated answers
are rate-limited per source from a fixed table; every peer address passes the
`PeerPolicy`; allocations, permissions and channels are capped per user,
server and allocation; each allocation has a byte budget; anything malformed
is dropped or answered with 400, never raised.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic

from peerline.net import Address
from peerline.stun import (
    MAGIC_COOKIE,
    AttributeType,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    comprehension_required_unknown,
    encode_attributes,
    encode_xor_address,
    parse,
    verify_fingerprint,
)
from peerline.turn.allocation import (
    IPV4,
    IPV6,
    Action,
    Allocation,
    ClientKey,
    CloseRelays,
    H,
    OpenRelays,
    ToClient,
)
from peerline.turn.auth import Credentials
from peerline.turn.channeldata import HEADER, PADDING, valid_channel
from peerline.turn.config import TurnConfig
from peerline.turn.gate import Authenticated, Gate
from peerline.turn.stats import TurnStats
from peerline.turn.tcp_relay import TCP_PROTOCOL, TcpConnection, TcpRelays

UDP_PROTOCOL = 17
_FAMILY_BYTE = {0x01: IPV4, 0x02: IPV6}
_TURN_METHODS = frozenset(
    (
        Method.ALLOCATE,
        Method.REFRESH,
        Method.CREATE_PERMISSION,
        Method.CHANNEL_BIND,
        Method.CONNECT,
        Method.CONNECTION_BIND,
    )
)
_DATA_INDICATION = (0x0017).to_bytes(2, "big")  # method DATA, class indication
_DATA_TYPE = int(AttributeType.DATA).to_bytes(2, "big")
_XOR_PEER_TYPE = int(AttributeType.XOR_PEER_ADDRESS)
_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_MAX_INDICATION_CACHE = 1024
#: ChannelData header (channel number, length): one C call builds it per relayed packet.
_pack_header = HEADER.pack
# Timer kinds in the expiry heap.
_ALLOCATION, _PERMISSION, _CHANNEL, _RETIRED, _RESERVATION, _TCP = range(6)
#: RFC 8656 §7.2: a port reserved with EVEN-PORT's R bit is kept about 30 seconds.
RESERVATION_LIFETIME = 30.0


@dataclass(frozen=True, slots=True)
class _Pending:
    """An Allocate waiting for the adapter to open its relay sockets."""

    client: ClientKey
    request: Message
    auth: Authenticated
    lifetime: int
    primary: int
    additional_error: int | None
    reserve: bool
    tcp: bool


def encode_address_error_code(family: int, code: int) -> bytes:
    """ADDRESS-ERROR-CODE (RFC 8656 §18.13): family, reserved, class, number, reason."""
    reason = ErrorCode(code).reason.encode()
    return bytes((0x01 if family == IPV4 else 0x02, 0, code // 100, code % 100)) + reason


class TurnServer(Generic[H]):
    """Allocations keyed by 5-tuple; see the module docstring for the contract."""

    def __init__(
        self, config: TurnConfig, credentials: Credentials, *, now: float, wall_offset: float = 0.0
    ) -> None:
        self.config = config
        self.credentials = credentials
        #: Unix time minus `now`: REST credentials and nonces expire on the wall clock.
        self.wall_offset = wall_offset
        self.stats = TurnStats()
        self._gate = Gate(config, credentials, self.stats, now=now, wall_offset=wall_offset)
        self._allocations: dict[ClientKey, Allocation[H]] = {}
        self._per_user: Counter[str] = Counter()
        self._pending: dict[int, _Pending] = {}
        #: RESERVATION-TOKEN -> (relayed address, handle, client that reserved it).
        self._reservations: dict[bytes, tuple[Address, H, ClientKey]] = {}
        self._tokens = itertools.count(1)
        self._timers: list[tuple[float, int, int, Allocation[H] | None, object]] = []
        self._seq = itertools.count()
        self._actions: list[Action[H]] = []
        self._bandwidth = float(config.bandwidth)
        self._software = encode_attributes([(AttributeType.SOFTWARE, config.software.encode())])
        #: RFC 6062 TCP relays: Connect, ConnectionBind and the peer connections.
        self.tcp = TcpRelays(self)
        self._handlers: dict[int, Callable[[Message, ClientKey, Authenticated, float], None]] = {
            Method.ALLOCATE: self._allocate,
            Method.REFRESH: self._refresh,
            Method.CREATE_PERMISSION: self._create_permission,
            Method.CHANNEL_BIND: self._channel_bind,
            Method.CONNECT: self.tcp.connect,
            Method.CONNECTION_BIND: self.tcp.connection_bind,
        }

    # -- what the adapter reads ------------------------------------------------------

    def pop_actions(self) -> list[Action[H]]:
        """Everything the core asked for since the last call, in order."""
        actions, self._actions = self._actions, []
        return actions

    def get_timer(self) -> float | None:
        """When `handle_timer` must next run (the earliest expiry), or None."""
        return self._timers[0][0] if self._timers else None

    def allocation(self, client: ClientKey) -> Allocation[H] | None:
        return self._allocations.get(client)

    @property
    def allocation_count(self) -> int:
        return len(self._allocations)

    # -- the relay hot path ----------------------------------------------------------

    def channel_data(
        self, data: bytes, client: ClientKey, now: float
    ) -> tuple[H, bytes, Address] | None:
        """ChannelData from a client: (relay handle, payload, peer) to send, or None."""
        alloc = self._allocations.get(client)
        if alloc is None or len(data) < 4:
            self.stats.dropped["no-allocation"] += 1
            return None
        binding = alloc.channels.get(data[0] << 8 | data[1])
        if binding is None:
            self.stats.dropped["unbound-channel"] += 1
            return None
        n = data[2] << 8 | data[3]
        if n + 4 > len(data):
            self.stats.dropped["malformed"] += 1
            return None
        peer = binding[0]
        if peer[0] not in alloc.permissions:
            self.stats.dropped["no-permission"] += 1
            return None
        if self._bandwidth and not self._spend(alloc, n, now):
            return None
        stats = self.stats
        stats.packets_to_peers += 1
        stats.bytes_to_peers += n
        return binding[1], data[4 : 4 + n], peer

    def peer_data(
        self, alloc: Allocation[H], data: bytes, peer: Address, now: float
    ) -> bytes | None:
        """A datagram from `peer` on `alloc`'s relay: the bytes to send to its client
        (ChannelData when the peer has a channel, else a Data indication), or None."""
        if alloc.dead or peer[0] not in alloc.permissions:
            self.stats.dropped["no-permission"] += 1
            return None
        n = len(data)
        if n > 0xFFEC or (self._bandwidth and not self._spend(alloc, n, now)):
            return None
        stats = self.stats
        stats.packets_from_peers += 1
        stats.bytes_from_peers += n
        number = alloc.peer_channel.get(peer)
        if number is not None:
            if alloc.stream:
                return _pack_header(number, n) + data + PADDING[n & 3]
            return _pack_header(number, n) + data
        prefix = alloc.indications.get(peer)
        if prefix is None:
            prefix = self._indication_prefix(alloc, peer)
        pad = PADDING[n & 3]
        body = len(prefix) - 14 + n + len(pad)
        return b"".join(
            (_DATA_INDICATION, body.to_bytes(2, "big"), prefix, n.to_bytes(2, "big"), data, pad)
        )

    def _indication_prefix(self, alloc: Allocation[H], peer: Address) -> bytes:
        """Cookie, transaction id and XOR-PEER-ADDRESS of Data indications from `peer`,
        then the DATA type: made once per peer (the id is random, and stays)."""
        if len(alloc.indications) >= _MAX_INDICATION_CACHE:
            alloc.indications.clear()
        tid = secrets.token_bytes(12)
        xor_peer = encode_attributes([(_XOR_PEER_TYPE, encode_xor_address(peer, tid))])
        prefix = _COOKIE + tid + xor_peer + _DATA_TYPE
        alloc.indications[peer] = prefix
        return prefix

    def _spend(self, alloc: Allocation[H], n: int, now: float) -> bool:
        """Take `n` bytes from the allocation's budget (a token bucket of one second)."""
        rate = self._bandwidth
        tokens = alloc.tokens + (now - alloc.bucket_stamp) * rate
        alloc.bucket_stamp = now
        tokens = min(tokens, rate)
        if tokens < n:
            alloc.tokens = tokens
            self.stats.dropped["bandwidth"] += 1
            return False
        alloc.tokens = tokens - n
        return True

    # -- STUN messages from clients --------------------------------------------------

    def handle_stun(
        self, data: bytes, client: ClientKey, now: float
    ) -> tuple[H, bytes, Address] | None:
        """A STUN message from a client. Requests are answered through actions; a Send
        indication returns what to relay, like `channel_data`."""
        try:
            message = parse(data)
        except MalformedMessage:
            self.stats.dropped["malformed"] += 1
            return None
        if AttributeType.FINGERPRINT in message and not verify_fingerprint(message):
            self.stats.dropped["bad-fingerprint"] += 1
            return None
        klass = message.message_class
        if klass is MessageClass.INDICATION:
            if message.method == Method.SEND:
                return self._send_indication(message, client, now)
            self.stats.dropped["indication"] += 1
            return None
        if klass is not MessageClass.REQUEST:
            self.stats.dropped["not-request"] += 1
            return None
        self._request(message, client, now)
        return None

    def _send_indication(
        self, message: Message, client: ClientKey, now: float
    ) -> tuple[H, bytes, Address] | None:
        alloc = self._allocations.get(client)
        if alloc is None or alloc.tcp:  # a TCP allocation relays no datagrams
            self.stats.dropped["no-allocation" if alloc is None else "tcp-allocation"] += 1
            return None
        try:
            peers = message.xor_peer_addresses
        except MalformedMessage:
            peers = []
        data = message.data
        unknown = comprehension_required_unknown(message)
        if len(peers) != 1 or data is None or unknown:
            self.stats.dropped["malformed"] += 1
            return None
        peer = (peers[0].ip, peers[0].port)
        handle = alloc.handle_for(peer[0])
        if handle is None or peer[0] not in alloc.permissions:
            self.stats.dropped["no-permission"] += 1
            return None
        if self._bandwidth and not self._spend(alloc, len(data), now):
            return None
        self.stats.packets_to_peers += 1
        self.stats.bytes_to_peers += len(data)
        return handle, data, peer

    def _request(self, message: Message, client: ClientKey, now: float) -> None:
        self.stats.requests += 1
        alloc = self._allocations.get(client)
        if alloc is not None and alloc.last_response is not None:
            tid, response = alloc.last_response
            if tid == message.transaction_id:  # a retransmission: same answer again
                self._actions.append(ToClient(client, response))
                return
        ip = client[1][0]
        if message.method not in _TURN_METHODS:
            refusal = self._gate.refuse(message, ip, now, ErrorCode.BAD_REQUEST, "bad-method")
            if refusal is not None:
                self._actions.append(ToClient(client, refusal))
            return
        auth = self._gate.check(message, ip, now)
        if not isinstance(auth, Authenticated):
            if auth is not None:
                self._actions.append(ToClient(client, auth))
            return
        unknown = comprehension_required_unknown(message)
        if unknown:
            builder = MessageBuilder.response_to(message, error=True)
            builder.add_error_code(ErrorCode.UNKNOWN_ATTRIBUTE).add_unknown_attributes(unknown)
            self._send(builder, client, auth, "unknown-attribute")
            return
        try:
            self._handlers[message.method](message, client, auth, now)
        except MalformedMessage:
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "malformed")

    def _send(
        self,
        builder: MessageBuilder,
        client: ClientKey,
        auth: Authenticated,
        refusal: str | None = None,
        *,
        alloc: Allocation[H] | None = None,
    ) -> None:
        """Sign and queue an answer to an authenticated request; remember it on the
        allocation so a retransmitted request gets the same bytes back."""
        if refusal is not None:
            self.stats.refusals[refusal] += 1
        data = auth.sign(builder)
        if alloc is not None:
            alloc.last_response = (builder.transaction_id, data)
        self._actions.append(ToClient(client, data))

    def _error(
        self,
        message: Message,
        client: ClientKey,
        auth: Authenticated,
        code: ErrorCode,
        refusal: str,
        *,
        alloc: Allocation[H] | None = None,
    ) -> None:
        builder = MessageBuilder.response_to(message, error=True).add_error_code(code)
        self._send(builder, client, auth, refusal, alloc=alloc)

    def _owned(
        self, message: Message, client: ClientKey, auth: Authenticated
    ) -> Allocation[H] | None:
        """The client's allocation for a non-Allocate request, or None after 437/441."""
        alloc = self._allocations.get(client)
        if alloc is None:
            self._error(message, client, auth, ErrorCode.ALLOCATION_MISMATCH, "no-allocation")
            return None
        if alloc.username != auth.username:
            self._error(message, client, auth, ErrorCode.WRONG_CREDENTIALS, "wrong-credentials")
            return None
        return alloc

    # -- Allocate (RFC 8656 §7.2, RFC 6156) ----------------------------------------

    def _allocate(
        self, message: Message, client: ClientKey, auth: Authenticated, now: float
    ) -> None:
        config = self.config
        if client in self._allocations or any(p.client == client for p in self._pending.values()):
            self._error(message, client, auth, ErrorCode.ALLOCATION_MISMATCH, "allocation-exists")
            return
        transport = message.requested_transport
        if transport is None:
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "no-transport")
            return
        if transport not in (UDP_PROTOCOL, TCP_PROTOCOL):
            self._error(
                message, client, auth, ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL, "transport"
            )
            return
        requested = message.get(AttributeType.REQUESTED_ADDRESS_FAMILY)
        additional = message.get(AttributeType.ADDITIONAL_ADDRESS_FAMILY)
        even = message.get(AttributeType.EVEN_PORT)
        reservation = message.get(AttributeType.RESERVATION_TOKEN)
        tcp = transport == TCP_PROTOCOL
        if tcp and (
            client[0] == "udp"  # RFC 6062 §5.1: TCP relays only for TCP/TLS clients
            or AttributeType.DONT_FRAGMENT in message
            or even is not None
            or reservation is not None
            or additional is not None
        ):
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "tcp-allocate")
            return
        if (requested is not None and additional is not None) or (
            reservation is not None
            and (even is not None or requested is not None or additional is not None)
        ):
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "conflicting-attributes")
            return
        if (even is not None and len(even) != 1) or (
            reservation is not None and len(reservation) != 8
        ):
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "malformed")
            return
        primary = IPV4
        if requested is not None:
            family = _FAMILY_BYTE.get(requested[0]) if len(requested) == 4 else None
            if family is None:
                self._error(message, client, auth, ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED, "family")
                return
            primary = family
        reached = client[2][0]
        families = [(primary, config.relay_ip(primary, reached))]
        if families[0][1] is None:
            self._error(message, client, auth, ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED, "family")
            return
        additional_error = None
        if additional is not None:
            if len(additional) != 4 or additional[0] != 0x02:
                self._error(message, client, auth, ErrorCode.BAD_REQUEST, "additional-family")
                return
            ip6 = config.relay_ip(IPV6, reached)
            if ip6 is None:
                additional_error = int(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
            else:
                families.append((IPV6, ip6))
        if self._per_user[auth.username] >= config.user_quota:
            self._error(message, client, auth, ErrorCode.ALLOCATION_QUOTA_REACHED, "user-quota")
            return
        in_use = len(self._allocations) + len(self._pending) + len(self._reservations)
        if in_use >= config.max_allocations:
            self._error(message, client, auth, ErrorCode.INSUFFICIENT_CAPACITY, "server-quota")
            return
        reuse = None
        if reservation is not None:
            reserved = self._reservations.pop(reservation, None)
            if reserved is None:
                self._error(message, client, auth, ErrorCode.INSUFFICIENT_CAPACITY, "reservation")
                return
            reuse = reserved[:2]
        token = next(self._tokens)
        reserve = even is not None and bool(even[0] & 0x80)
        self._pending[token] = _Pending(
            client,
            message,
            auth,
            config.clamp_lifetime(message.lifetime),
            primary,
            additional_error,
            reserve,
            tcp,
        )
        addresses = tuple((family, ip) for family, ip in families if ip is not None)
        self._actions.append(
            OpenRelays(
                token=token,
                client=client,
                addresses=addresses,
                dont_fragment=AttributeType.DONT_FRAGMENT in message,
                even_port=even is not None,
                reserve_next=reserve,
                reuse=reuse,
                tcp=tcp,
            )
        )

    def relays_opened(
        self,
        token: int,
        opened: list[tuple[int, Address, H]],
        now: float,
        *,
        reserved: tuple[Address, H] | None = None,
    ) -> Allocation[H] | None:
        """The adapter bound the relay sockets of `OpenRelays(token)` (and, when asked,
        reserved the next port in `reserved`): the allocation exists from now on. None
        if the request is unknown or the sockets do not fit it: the adapter must then
        close what it opened."""
        pending = self._pending.pop(token, None)
        if pending is None:
            return None
        message, auth, client = pending.request, pending.auth, pending.client
        relays = {family: address for family, address, _ in opened}
        if pending.primary not in relays or pending.reserve != (reserved is not None):
            self._error(message, client, auth, ErrorCode.INSUFFICIENT_CAPACITY, "relay-socket")
            return None
        additional_error = pending.additional_error
        wanted_ipv6 = AttributeType.ADDITIONAL_ADDRESS_FAMILY in message
        if additional_error is None and wanted_ipv6 and IPV6 not in relays:
            additional_error = int(ErrorCode.INSUFFICIENT_CAPACITY)
        handles = {family: handle for family, _, handle in opened}
        expires = now + pending.lifetime
        alloc = Allocation(
            client,
            auth.username,
            relays=relays,
            handles=handles,
            expires=expires,
            now=now,
            burst=self._bandwidth,
            tcp=pending.tcp,
        )
        self._allocations[client] = alloc
        self._per_user[auth.username] += 1
        self.stats.allocations += 1
        self.stats.allocations_created += 1
        self._schedule(expires, _ALLOCATION, alloc, None)
        builder = MessageBuilder.response_to(message)
        for family in (IPV4, IPV6):
            if family in relays:
                builder.add_xor_address(AttributeType.XOR_RELAYED_ADDRESS, relays[family])
        builder.add_u32(AttributeType.LIFETIME, pending.lifetime)
        builder.add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, client[1])
        if reserved is not None:
            name = secrets.token_bytes(8)
            deadline = now + RESERVATION_LIFETIME
            self._reservations[name] = (reserved[0], reserved[1], client)
            self._schedule(deadline, _RESERVATION, None, name)
            builder.add(AttributeType.RESERVATION_TOKEN, name)
        if additional_error is not None:
            builder.add(
                AttributeType.ADDRESS_ERROR_CODE, encode_address_error_code(IPV6, additional_error)
            )
        builder.add_encoded(self._software)
        self._send(builder, client, auth, alloc=alloc)
        return alloc

    def relays_failed(self, token: int, now: float) -> None:
        """The adapter could not bind a relay socket: 508 to the client."""
        pending = self._pending.pop(token, None)
        if pending is not None:
            self._error(
                pending.request,
                pending.client,
                pending.auth,
                ErrorCode.INSUFFICIENT_CAPACITY,
                "relay-socket",
            )

    # -- Refresh (RFC 8656 §7.3) ---------------------------------------------------

    def _refresh(
        self, message: Message, client: ClientKey, auth: Authenticated, now: float
    ) -> None:
        alloc = self._owned(message, client, auth)
        if alloc is None:
            return
        requested = message.get(AttributeType.REQUESTED_ADDRESS_FAMILY)
        family = _FAMILY_BYTE.get(requested[0]) if requested else None
        if requested is not None and family not in alloc.relays:
            self._error(
                message, client, auth, ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH, "family", alloc=alloc
            )
            return
        asked = message.lifetime
        builder = MessageBuilder.response_to(message)
        if asked == 0:
            self._delete(alloc, expired=False)
            builder.add_u32(AttributeType.LIFETIME, 0)
            self._send(builder, client, auth)
            return
        lifetime = self.config.clamp_lifetime(asked)
        alloc.expires = now + lifetime
        builder.add_u32(AttributeType.LIFETIME, lifetime)
        self._send(builder, client, auth, alloc=alloc)

    def client_closed(self, client: ClientKey) -> None:
        """The client's TCP/TLS connection closed: its allocation goes with it (§3.1), or
        the peer connection it was bound to (RFC 6062)."""
        alloc = self._allocations.get(client)
        if alloc is not None:
            self._delete(alloc, expired=False)
        self.tcp.client_closed(client)

    def _delete(self, alloc: Allocation[H], *, expired: bool) -> None:
        alloc.dead = True
        del self._allocations[alloc.client]
        self._per_user[alloc.username] -= 1
        if self._per_user[alloc.username] <= 0:
            del self._per_user[alloc.username]
        stats = self.stats
        stats.allocations -= 1
        stats.permissions -= len(alloc.permissions)
        stats.channels -= len(alloc.channels)
        if expired:
            stats.allocations_expired += 1
        else:
            stats.allocations_deleted += 1
        self.tcp.allocation_deleted(alloc)
        self._actions.append(CloseRelays(alloc.client, tuple(alloc.handles.values())))

    # -- permissions and channels (RFC 8656 §9, §12) -------------------------------

    def _check_peers(
        self,
        message: Message,
        client: ClientKey,
        auth: Authenticated,
        alloc: Allocation[H],
        peers: list[Address],
    ) -> bool:
        """Every peer of a family the allocation relays and allowed by policy; else 443/403."""
        for ip, _port in peers:
            if alloc.handle_for(ip) is None:
                self._error(
                    message,
                    client,
                    auth,
                    ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH,
                    "peer-family",
                    alloc=alloc,
                )
                return False
            refusal = self.config.policy.check(ip)
            if refusal is not None:
                self._error(
                    message, client, auth, ErrorCode.FORBIDDEN, f"peer-{refusal}", alloc=alloc
                )
                return False
        return True

    def _permit(self, alloc: Allocation[H], ip: str, now: float) -> None:
        if ip not in alloc.permissions:
            self.stats.permissions += 1
            self._schedule(now + self.config.permission_lifetime, _PERMISSION, alloc, ip)
        alloc.permissions[ip] = now + self.config.permission_lifetime

    def _create_permission(
        self, message: Message, client: ClientKey, auth: Authenticated, now: float
    ) -> None:
        alloc = self._owned(message, client, auth)
        if alloc is None:
            return
        peers = [(p.ip, p.port) for p in message.xor_peer_addresses]
        if not peers:
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "no-peer", alloc=alloc)
            return
        if not self._check_peers(message, client, auth, alloc, peers):
            return
        fresh = {ip for ip, _ in peers if ip not in alloc.permissions}
        if len(alloc.permissions) + len(fresh) > self.config.max_permissions:
            self._error(
                message,
                client,
                auth,
                ErrorCode.INSUFFICIENT_CAPACITY,
                "permission-quota",
                alloc=alloc,
            )
            return
        for ip, _ in peers:
            self._permit(alloc, ip, now)
        self._send(MessageBuilder.response_to(message), client, auth, alloc=alloc)

    def _channel_bind(
        self, message: Message, client: ClientKey, auth: Authenticated, now: float
    ) -> None:
        alloc = self._owned(message, client, auth)
        if alloc is None:
            return
        number = message.channel_number
        peers = [(p.ip, p.port) for p in message.xor_peer_addresses]
        if number is None or not valid_channel(number) or len(peers) != 1 or alloc.tcp:
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "bad-channel", alloc=alloc)
            return
        peer = peers[0]
        if not self._check_peers(message, client, auth, alloc, peers):
            return
        bound = alloc.channels.get(number)
        other = alloc.peer_channel.get(peer)
        conflict = (bound is not None and bound[0] != peer) or (
            other is not None and other != number
        )
        retired_peer = alloc.retired.get(number)
        retired_number = alloc.retired.get(peer)
        if bound is None and (
            (retired_peer is not None and retired_peer != peer)
            or (retired_number is not None and retired_number != number)
        ):
            conflict = True
        if conflict:
            self._error(message, client, auth, ErrorCode.BAD_REQUEST, "channel-in-use", alloc=alloc)
            return
        if bound is None and len(alloc.channels) >= self.config.max_channels:
            self._error(
                message, client, auth, ErrorCode.INSUFFICIENT_CAPACITY, "channel-quota", alloc=alloc
            )
            return
        if (
            peer[0] not in alloc.permissions
            and len(alloc.permissions) >= self.config.max_permissions
        ):
            self._error(
                message,
                client,
                auth,
                ErrorCode.INSUFFICIENT_CAPACITY,
                "permission-quota",
                alloc=alloc,
            )
            return
        handle = alloc.handle_for(peer[0])
        assert handle is not None  # _check_peers made sure
        expiry = now + self.config.channel_lifetime
        if bound is None:
            alloc.channels[number] = (peer, handle)
            alloc.peer_channel[peer] = number
            alloc.retired.pop(number, None)
            alloc.retired.pop(peer, None)
            self.stats.channels += 1
            self._schedule(expiry, _CHANNEL, alloc, number)
        alloc.channel_expiry[number] = expiry
        self._permit(alloc, peer[0], now)
        self._send(MessageBuilder.response_to(message), client, auth, alloc=alloc)

    # -- expiry ------------------------------------------------------------------------

    def _schedule(
        self, deadline: float, kind: int, alloc: Allocation[H] | None, key: object
    ) -> None:
        heapq.heappush(self._timers, (deadline, next(self._seq), kind, alloc, key))

    def _schedule_tcp(self, conn: TcpConnection[H]) -> None:
        self._schedule(conn.deadline, _TCP, conn.alloc, conn.id)

    def handle_timer(self, now: float) -> None:
        """Expire what is due. Each live object has exactly one heap entry: a refreshed
        one is pushed back at its new deadline when its old entry comes up."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, alloc, key = heapq.heappop(timers)
            if alloc is None:
                assert isinstance(key, bytes)
                held = self._reservations.pop(key, None)
                if held is not None:
                    self._actions.append(CloseRelays(held[2], (held[1],)))
                continue
            if alloc.dead:
                continue
            if kind == _ALLOCATION:
                if alloc.expires > now:
                    self._schedule(alloc.expires, kind, alloc, None)
                else:
                    self._delete(alloc, expired=True)
            elif kind == _PERMISSION:
                assert isinstance(key, str)
                expiry = alloc.permissions.get(key)
                if expiry is None:
                    continue
                if expiry > now:
                    self._schedule(expiry, kind, alloc, key)
                else:
                    del alloc.permissions[key]
                    self.stats.permissions -= 1
            elif kind == _TCP:
                assert isinstance(key, int)
                self.tcp.timer(key, now)
            elif kind == _CHANNEL:
                assert isinstance(key, int)
                expiry = alloc.channel_expiry.get(key)
                if expiry is None:
                    continue
                if expiry > now:
                    self._schedule(expiry, kind, alloc, key)
                else:
                    self._unbind(alloc, key, now)
            else:
                self._unretire(alloc, key, now)

    def _unbind(self, alloc: Allocation[H], number: int, now: float) -> None:
        peer, _ = alloc.channels.pop(number)
        del alloc.channel_expiry[number]
        del alloc.peer_channel[peer]
        self.stats.channels -= 1
        until = now + self.config.channel_reuse_delay
        alloc.retired[number] = peer
        alloc.retired[peer] = number
        self._schedule(until, _RETIRED, alloc, (number, peer))

    def _unretire(self, alloc: Allocation[H], key: object, now: float) -> None:
        assert isinstance(key, tuple)
        number, peer = key
        if alloc.retired.get(number) == peer:
            del alloc.retired[number]
        if alloc.retired.get(peer) == number:
            del alloc.retired[peer]
