"""A TURN client (RFC 8656), sans I/O: one allocation on one server.

Inputs are API calls (`allocate`, `create_permission`, `bind_channel`, `send`,
`close`), bytes received from the server (`receive`) and the passage of time
(`handle_timer`); outputs are bytes for the server (`datagrams_to_send`), the
next deadline (`get_timer`) and events (`next_event`). It answers the 401
challenge, follows a nonce that went stale (438) and a 300 Try Alternate,
refreshes the allocation before it expires, keeps permissions and channels
alive, frames ChannelData (padded over TCP/TLS) and deallocates on `close`.

This is what the ICE agent uses for relayed candidates: `Allocated.relayed`
is the candidate's address, and `send`/`DataReceived` carry its traffic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from peerline.net import Address
from peerline.stun import (
    AttributeType,
    ClientTransaction,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    ResponseReceived,
    TransactionConfig,
    Transport,
    long_term_key,
    parse,
    verify_message_integrity,
)
from peerline.stun.attributes import encode_byte
from peerline.turn.channeldata import (
    MAX_CLIENT_CHANNEL,
    MIN_CHANNEL,
    decode_channel_data,
    encode_channel_data,
    stream_frame_length,
)

UDP_PROTOCOL = 17
_MAX_REDIRECTS = 2
_MAX_STREAM_BUFFER = 4 + 0xFFFF + 3 + 20


class State(Enum):
    """Where the allocation stands."""

    IDLE = "idle"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """One server, one set of credentials, and the timers of the allocation."""

    server: Address
    username: str
    password: str
    transport: Transport = Transport.UDP
    #: Lifetime to ask for; the server may grant another.
    lifetime: int = 600
    #: Relayed address family: 4 or 6 (REQUESTED-ADDRESS-FAMILY when 6).
    family: int = 4
    #: Refresh this many seconds before the allocation would expire.
    refresh_margin: float = 60.0
    #: Permissions last 300 s and channels 600 s on the server; refresh well before.
    permission_refresh: float = 240.0
    channel_refresh: float = 480.0
    software: str | None = "peerline"
    transaction: TransactionConfig = field(default_factory=TransactionConfig)

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        if self.lifetime <= 0 or self.refresh_margin <= 0:
            raise ValueError("lifetime and refresh_margin must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocated:
    """The relay is ready: peers reach the client at `relayed`."""

    relayed: Address
    mapped: Address
    lifetime: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationFailed:
    """No allocation (or it was lost): the error code when the server gave one."""

    code: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirected:
    """300 Try Alternate: the allocation is being retried at `server`. Over TCP/TLS
    the adapter must connect there before sending what comes next."""

    server: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionCreated:
    peer_ip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelBound:
    peer: Address
    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed:
    """A CreatePermission or ChannelBind was refused (403 for a denied peer...)."""

    method: Method
    peer: Address
    code: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """Application data from `peer`, relayed by the server."""

    peer: Address
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    """The allocation was given back (or given up): nothing more will happen."""


Event = (
    Allocated
    | AllocationFailed
    | Redirected
    | PermissionCreated
    | ChannelBound
    | RequestFailed
    | DataReceived
    | Closed
)


@dataclass(slots=True)
class _Request:
    """A request in flight: what it was for, and whether it may still renew a nonce."""

    method: Method
    transaction: ClientTransaction
    peer: Address | None = None
    number: int | None = None
    lifetime: int | None = None
    renewed: bool = False


class TurnClient:
    """One allocation's state machine; see the module docstring."""

    def __init__(self, config: ClientConfig, now: float) -> None:
        self.config = config
        self.server = config.server
        self.state = State.IDLE
        self.relayed: Address | None = None
        self.mapped: Address | None = None
        self._stream = config.transport.reliable
        self._realm: str | None = None
        self._nonce: str | None = None
        self._key: bytes | None = None
        self._requests: dict[bytes, _Request] = {}
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._buffer = bytearray()
        self._refresh_at: float | None = None
        self._permissions: dict[str, float] = {}  # peer IP -> next refresh
        self._channels: dict[Address, int] = {}  # peer -> number (confirmed)
        self._numbers: dict[int, Address] = {}
        self._channel_refresh: dict[Address, float] = {}
        self._next_number = MIN_CHANNEL
        self._redirects = 0

    # -- API ----------------------------------------------------------------------

    def allocate(self, now: float) -> None:
        """Start: an Allocate, answered by a 401 the client then satisfies."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"allocate in state {self.state.value}")
        self.state = State.ALLOCATING
        self._request(self._allocate_request(), Method.ALLOCATE, now, sign=False)

    def create_permission(self, peer_ip: str, now: float) -> None:
        """Let `peer_ip` send to the relay (and keep it so until `close`)."""
        self._require_allocated()
        self._permissions[peer_ip] = now + self.config.permission_refresh
        self._create_permission(peer_ip, now)

    def bind_channel(self, peer: Address, now: float) -> int:
        """Bind a channel to `peer` (also a permission); the number, once confirmed by
        `ChannelBound`, carries `send` to that peer as ChannelData."""
        self._require_allocated()
        for number, bound in self._numbers.items():
            if bound == peer:
                return number
        if self._next_number > MAX_CLIENT_CHANNEL:
            raise RuntimeError("no channel numbers left")
        number = self._next_number
        self._next_number += 1
        self._numbers[number] = peer
        self._channel_bind(peer, number, now)
        return number

    def send(self, data: bytes, peer: Address, now: float) -> None:
        """Queue `data` for `peer` (ChannelData when its channel is bound)."""
        self._out.append(self.wrap(data, peer))

    def wrap(self, data: bytes, peer: Address) -> bytes:
        """The bytes that carry `data` to `peer` through the relay, to send at once:
        ChannelData on a bound channel, else a Send indication."""
        number = self._channels.get(peer)
        if number is not None:
            return encode_channel_data(number, data, pad=self._stream)
        return (
            MessageBuilder(Method.SEND, MessageClass.INDICATION)
            .add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
            .add(AttributeType.DATA, data)
            .encode()
        )

    def close(self, now: float) -> None:
        """Give the allocation back (Refresh with lifetime 0); `Closed` follows."""
        if self.state is State.ALLOCATED:
            self.state = State.CLOSING
            self._refresh_at = None
            self._permissions.clear()
            self._channel_refresh.clear()
            builder = MessageBuilder(Method.REFRESH, MessageClass.REQUEST)
            builder.add_u32(AttributeType.LIFETIME, 0)
            self._request(builder, Method.REFRESH, now, lifetime=0)
        elif self.state in (State.IDLE, State.ALLOCATING):
            self._finish(State.CLOSED, Closed())

    # -- I/O --------------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Everything to send to `self.server` now (requests, retransmissions, data)."""
        out = self._out
        for request in list(self._requests.values()):
            out += request.transaction.datagrams_to_send(now)
        self._out = []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest of: a retransmission, the allocation's refresh, a permission's
        or a channel's refresh."""
        times = [t for r in self._requests.values() if (t := r.transaction.get_timer()) is not None]
        if self._refresh_at is not None:
            times.append(self._refresh_at)
        times += self._permissions.values()
        times += self._channel_refresh.values()
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        for tid, request in list(self._requests.items()):
            request.transaction.handle_timer(now)
            if request.transaction.done:
                del self._requests[tid]
                self._timed_out(request)
        if self.state is not State.ALLOCATED:
            return
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            builder = MessageBuilder(Method.REFRESH, MessageClass.REQUEST)
            builder.add_u32(AttributeType.LIFETIME, self.config.lifetime)
            self._request(builder, Method.REFRESH, now, lifetime=self.config.lifetime)
        for ip, due in list(self._permissions.items()):
            if now >= due:
                self._permissions[ip] = now + self.config.permission_refresh
                self._create_permission(ip, now)
        for peer, due in list(self._channel_refresh.items()):
            if now >= due:
                self._channel_refresh[peer] = now + self.config.channel_refresh
                self._channel_bind(peer, self._channels[peer], now)

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the server: one datagram (UDP) or a piece of the stream."""
        if not self._stream:
            self._message(data, now)
            return
        buffer = self._buffer
        buffer += data
        while True:
            try:
                size = stream_frame_length(buffer)
            except MalformedMessage:
                buffer.clear()  # not TURN: nothing on this stream can be trusted
                self._finish(State.FAILED, AllocationFailed(code=None, reason="bad stream"))
                return
            if size is None or len(buffer) < size:
                if len(buffer) > _MAX_STREAM_BUFFER:
                    buffer.clear()
                return
            frame = bytes(buffer[:size])
            del buffer[:size]
            self._message(frame, now)

    # -- what came in ------------------------------------------------------------------

    def _message(self, data: bytes, now: float) -> None:
        if not data:
            return
        if 0x40 <= data[0] <= 0x7F:
            try:
                number, payload = decode_channel_data(data)
            except MalformedMessage:
                return
            peer = self._numbers.get(number)
            if peer is not None:
                self._events.append(DataReceived(peer=peer, data=payload))
            return
        try:
            message = parse(data)
        except MalformedMessage:
            return
        if message.message_class is MessageClass.INDICATION:
            if message.method == Method.DATA:
                self._data_indication(message)
            return
        request = self._requests.get(message.transaction_id)
        if request is None or not request.transaction.handle_response(message, now):
            return
        del self._requests[message.transaction_id]
        result = request.transaction.result
        if not isinstance(result, ResponseReceived):
            self._timed_out(request)
            return
        self._response(request, result.message, now)

    def _data_indication(self, message: Message) -> None:
        try:
            peers = message.xor_peer_addresses
        except MalformedMessage:
            return
        data = message.data
        if len(peers) == 1 and data is not None:
            self._events.append(DataReceived(peer=(peers[0].ip, peers[0].port), data=data))

    def _response(self, request: _Request, message: Message, now: float) -> None:
        if message.message_class is MessageClass.SUCCESS:
            if self._key is not None and not verify_message_integrity(message, self._key):
                return  # not from the server we share a key with: ignore
            self._success(request, message, now)
            return
        error = message.error_code
        code = int(error.code) if error is not None else None
        if code in (ErrorCode.UNAUTHENTICATED, ErrorCode.STALE_NONCE) and self._retry(
            request, message, code, now
        ):
            return
        if code == ErrorCode.TRY_ALTERNATE and request.method == Method.ALLOCATE:
            alternate = message.alternate_server
            if alternate is not None and self._redirects < _MAX_REDIRECTS:
                self._redirects += 1
                self.server = (alternate.ip, alternate.port)
                self._realm = self._nonce = None
                self._key = None
                self._events.append(Redirected(server=self.server))
                self._request(self._allocate_request(), Method.ALLOCATE, now, sign=False)
                return
        self._failed(request, code, error.reason if error is not None else "error")

    def _retry(self, request: _Request, message: Message, code: int, now: float) -> bool:
        """Answer a 401 challenge (once) or a 438 (once per request) with fresh
        realm/nonce; False when that was already tried."""
        realm, nonce = message.realm, message.nonce
        if realm is None or nonce is None:
            return False
        first_challenge = self._key is None
        if code == ErrorCode.UNAUTHENTICATED and not first_challenge:
            return False
        if code == ErrorCode.STALE_NONCE and request.renewed:
            return False
        self._realm, self._nonce = realm, nonce
        if first_challenge:
            self._key = long_term_key(self.config.username, realm, self.config.password)
        original = parse(request.transaction.request).without_integrity()
        builder = MessageBuilder(original.method, MessageClass.REQUEST)
        for kind, value in original.attributes:
            if kind not in (AttributeType.USERNAME, AttributeType.REALM, AttributeType.NONCE):
                builder.add(kind, value)
        self._request(
            builder,
            request.method,
            now,
            peer=request.peer,
            number=request.number,
            lifetime=request.lifetime,
            renewed=code == ErrorCode.STALE_NONCE,
        )
        return True

    def _success(self, request: _Request, message: Message, now: float) -> None:
        method = request.method
        if method == Method.ALLOCATE:
            relayed, mapped = message.xor_relayed_address, message.xor_mapped_address
            if relayed is None:
                self._failed(request, None, "no XOR-RELAYED-ADDRESS")
                return
            lifetime = message.lifetime or self.config.lifetime
            self.relayed = (relayed.ip, relayed.port)
            self.mapped = (mapped.ip, mapped.port) if mapped is not None else None
            self.state = State.ALLOCATED
            self._schedule_refresh(lifetime, now)
            self._events.append(
                Allocated(relayed=self.relayed, mapped=self.mapped or ("", 0), lifetime=lifetime)
            )
        elif method == Method.REFRESH:
            if request.lifetime == 0:
                self._finish(State.CLOSED, Closed())
            elif self.state is State.ALLOCATED:
                self._schedule_refresh(message.lifetime or self.config.lifetime, now)
        elif method == Method.CREATE_PERMISSION and request.peer is not None:
            self._events.append(PermissionCreated(peer_ip=request.peer[0]))
        elif method == Method.CHANNEL_BIND and request.peer is not None:
            assert request.number is not None
            first = request.peer not in self._channels
            self._channels[request.peer] = request.number
            self._channel_refresh.setdefault(request.peer, now + self.config.channel_refresh)
            if first:
                self._events.append(ChannelBound(peer=request.peer, number=request.number))

    def _failed(self, request: _Request, code: int | None, reason: str) -> None:
        method = request.method
        if method == Method.ALLOCATE:
            self._finish(State.FAILED, AllocationFailed(code=code, reason=reason))
        elif method == Method.REFRESH:
            if request.lifetime == 0 or self.state is State.CLOSING:
                self._finish(State.CLOSED, Closed())  # 437: already gone, as wanted
            else:
                self._finish(State.FAILED, AllocationFailed(code=code, reason=reason))
        elif request.peer is not None:
            if method == Method.CHANNEL_BIND and request.peer not in self._channels:
                self._numbers.pop(request.number or 0, None)
            if method == Method.CREATE_PERMISSION:
                self._permissions.pop(request.peer[0], None)
            self._events.append(RequestFailed(method=method, peer=request.peer, code=code))

    def _timed_out(self, request: _Request) -> None:
        self._failed(request, None, "timed out")

    def _finish(self, state: State, event: Event) -> None:
        if self.state in (State.CLOSED, State.FAILED):
            return
        self.state = state
        self._requests.clear()
        self._refresh_at = None
        self._permissions.clear()
        self._channel_refresh.clear()
        self._events.append(event)
        if state is State.FAILED:
            self._events.append(Closed())

    # -- what goes out -------------------------------------------------------------------

    def _require_allocated(self) -> None:
        if self.state is not State.ALLOCATED:
            raise RuntimeError(f"not allocated (state {self.state.value})")

    def _schedule_refresh(self, lifetime: int, now: float) -> None:
        margin = min(self.config.refresh_margin, lifetime / 5)
        self._refresh_at = now + lifetime - margin

    def _allocate_request(self) -> MessageBuilder:
        builder = MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST)
        builder.add(AttributeType.REQUESTED_TRANSPORT, encode_byte(UDP_PROTOCOL))
        if self.config.family == 6:
            builder.add(AttributeType.REQUESTED_ADDRESS_FAMILY, encode_byte(0x02))
        builder.add_u32(AttributeType.LIFETIME, self.config.lifetime)
        if self.config.software:
            builder.add_text(AttributeType.SOFTWARE, self.config.software)
        return builder

    def _create_permission(self, peer_ip: str, now: float) -> None:
        builder = MessageBuilder(Method.CREATE_PERMISSION, MessageClass.REQUEST)
        builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, (peer_ip, 0))
        self._request(builder, Method.CREATE_PERMISSION, now, peer=(peer_ip, 0))

    def _channel_bind(self, peer: Address, number: int, now: float) -> None:
        builder = MessageBuilder(Method.CHANNEL_BIND, MessageClass.REQUEST)
        builder.add_port(AttributeType.CHANNEL_NUMBER, number)
        builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
        self._request(builder, Method.CHANNEL_BIND, now, peer=peer, number=number)

    def _request(
        self,
        builder: MessageBuilder,
        method: Method,
        now: float,
        *,
        sign: bool = True,
        peer: Address | None = None,
        number: int | None = None,
        lifetime: int | None = None,
        renewed: bool = False,
    ) -> None:
        key = self._key
        if sign and key is not None and self._realm is not None and self._nonce is not None:
            builder.add_text(AttributeType.USERNAME, self.config.username)
            builder.add_text(AttributeType.REALM, self._realm)
            builder.add_text(AttributeType.NONCE, self._nonce)
            data = builder.encode(integrity_key=key, fingerprint=True)
        else:
            data = builder.encode(fingerprint=True)
        transaction = ClientTransaction(
            data, transport=self.config.transport, now=now, config=self.config.transaction
        )
        self._requests[transaction.transaction_id] = _Request(
            method, transaction, peer, number, lifetime, renewed
        )
