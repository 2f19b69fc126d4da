"""The TURN client core wired to the TURN server core, with a fake clock: the 401
challenge, refreshes, stale nonces, permissions, channels, both data paths,
try-alternate, failures and deallocation."""

from dataclasses import dataclass, field

from peerline.stun import (
    AttributeType,
    ErrorCode,
    MessageBuilder,
    TransactionConfig,
    Transport,
    parse,
)
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
    State,
    TurnClient,
)
from tests.unit.turn_harness import SERVER, Harness, make_server

PEER = ("192.0.2.99", 7000)
ALLOW = ("192.0.2.0/24",)


@dataclass
class Wire:
    """Carries bytes between one client core and the server core, at `harness.now`."""

    harness: Harness
    client: TurnClient
    source: tuple[str, int] = ("192.0.2.10", 50000)
    to_peers: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    split: bool = False
    drop: bool = False

    @property
    def key(self) -> tuple[str, tuple[str, int], tuple[str, int]]:
        transport = "udp" if self.client.config.transport is Transport.UDP else "tcp"
        return (transport, self.source, SERVER)

    def flush(self) -> None:
        server = self.harness.server
        for _ in range(10):
            datagrams = self.client.datagrams_to_send(self.harness.now)
            if not datagrams:
                break
            for data in datagrams:
                if self.drop:
                    continue
                if 0x40 <= data[0] <= 0x7F:
                    out = server.channel_data(data, self.key, self.harness.now)
                else:
                    out = server.handle_stun(data, self.key, self.harness.now)
                if out is not None:
                    self.to_peers.append((out[1], out[2]))
                self.deliver()
        self.collect()

    def deliver(self) -> None:
        before = len(self.harness.sent)
        self.harness.pump()
        for action in self.harness.sent[before:]:
            self.feed(action.data)

    def feed(self, data: bytes) -> None:
        if self.split and len(data) > 3:
            self.client.receive(data[:3], self.harness.now)
            self.client.receive(data[3:], self.harness.now)
        else:
            self.client.receive(data, self.harness.now)

    def collect(self) -> None:
        while (event := self.client.next_event()) is not None:
            self.events.append(event)

    def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self.harness.now + seconds
        while self.harness.now < end:
            self.harness.now = min(end, self.harness.now + step)
            self.harness.server.handle_timer(self.harness.now)
            self.harness.pump()
            self.client.handle_timer(self.harness.now)
            self.flush()

    def from_peer(self, data: bytes, peer: tuple[str, int] = PEER) -> None:
        alloc = self.harness.server.allocation(self.key)
        assert alloc is not None
        out = self.harness.server.peer_data(alloc, data, peer, self.harness.now)
        if out is not None:
            self.feed(out)
        self.collect()

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def connect(
    *,
    password: str = "wonderland",
    transport: Transport = Transport.UDP,
    harness: Harness | None = None,
    **overrides: object,
) -> Wire:
    harness = harness or make_server(allow=ALLOW)
    config = ClientConfig(
        server=SERVER,
        username="alice",
        password=password,
        transport=transport,
        transaction=TransactionConfig(rto=0.1, rc=3, rm=2, ti=2.0),
        **overrides,  # type: ignore[arg-type]
    )
    client = TurnClient(config, harness.now)
    wire = Wire(harness, client)
    client.allocate(harness.now)
    wire.flush()
    return wire


def test_allocates_through_the_401_challenge() -> None:
    wire = connect()
    allocated = wire.of(Allocated)
    assert len(allocated) == 1
    assert allocated[0].relayed[0] == "198.51.100.1"
    assert allocated[0].mapped == wire.source
    assert wire.client.state is State.ALLOCATED


def test_wrong_password_fails_with_401() -> None:
    wire = connect(password="nope")
    failed = wire.of(AllocationFailed)
    assert [f.code for f in failed] == [401]
    assert wire.of(Closed)


def test_no_answer_times_out() -> None:
    harness = make_server()
    config = ClientConfig(
        server=SERVER,
        username="alice",
        password="x",
        transaction=TransactionConfig(rto=0.1, rc=3, rm=2),
    )
    wire = Wire(harness, TurnClient(config, 0.0), drop=True)
    wire.client.allocate(0.0)
    wire.flush()
    wire.advance(5, step=0.05)
    assert [f.reason for f in wire.of(AllocationFailed)] == ["timed out"]


def test_permission_send_indication_and_data_indication() -> None:
    wire = connect()
    wire.client.create_permission(PEER[0], wire.harness.now)
    wire.flush()
    assert wire.of(PermissionCreated) == [PermissionCreated(peer_ip=PEER[0])]
    wire.client.send(b"hello", PEER, wire.harness.now)
    wire.flush()
    assert wire.to_peers == [(b"hello", PEER)]
    wire.from_peer(b"world")
    assert wire.of(DataReceived) == [DataReceived(peer=PEER, data=b"world")]


def test_channel_bind_then_channel_data_both_ways() -> None:
    wire = connect()
    number = wire.client.bind_channel(PEER, wire.harness.now)
    wire.flush()
    assert wire.of(ChannelBound) == [ChannelBound(peer=PEER, number=number)]
    assert wire.client.wrap(b"x", PEER)[:2] == number.to_bytes(2, "big")
    wire.client.send(b"ping", PEER, wire.harness.now)
    wire.flush()
    assert wire.to_peers == [(b"ping", PEER)]
    wire.from_peer(b"pong")
    assert wire.of(DataReceived) == [DataReceived(peer=PEER, data=b"pong")]


def test_refused_peer_is_reported() -> None:
    wire = connect()
    wire.client.create_permission("10.0.0.1", wire.harness.now)
    wire.client.bind_channel(("127.0.0.1", 9), wire.harness.now)
    wire.flush()
    assert [(f.peer[0], f.code) for f in wire.of(RequestFailed)] == [
        ("10.0.0.1", 403),
        ("127.0.0.1", 403),
    ]


def test_refreshes_keep_allocation_permission_and_channel_alive_across_stale_nonces() -> None:
    wire = connect()
    wire.client.create_permission("192.0.2.98", wire.harness.now)
    wire.client.bind_channel(PEER, wire.harness.now)
    wire.flush()
    wire.advance(2000, step=5)  # nonces last 600 s: several 438s on the way
    assert wire.harness.server.allocation_count == 1
    assert wire.harness.server.stats.refusals["stale-nonce"] > 0
    assert not wire.of(AllocationFailed)
    wire.from_peer(b"late", ("192.0.2.98", 1))
    wire.from_peer(b"later")
    assert [e.data for e in wire.of(DataReceived)] == [b"late", b"later"]


def test_close_deallocates() -> None:
    wire = connect()
    wire.client.close(wire.harness.now)
    wire.flush()
    assert wire.of(Closed) == [Closed()]
    assert wire.client.state is State.CLOSED
    assert wire.harness.server.allocation_count == 0


def test_over_tcp_channel_data_is_padded_and_the_stream_is_framed() -> None:
    harness = make_server(allow=ALLOW)
    config = ClientConfig(
        server=SERVER, username="alice", password="wonderland", transport=Transport.TCP
    )
    wire = Wire(harness, TurnClient(config, 0.0), split=True)
    wire.client.allocate(0.0)
    wire.flush()
    assert wire.of(Allocated)
    wire.client.bind_channel(PEER, 0.0)
    wire.flush()
    assert wire.client.wrap(b"abcde", PEER) == b"\x40\x00\x00\x05abcde\x00\x00\x00"
    wire.from_peer(b"xyz")
    wire.from_peer(b"12345678")
    assert [e.data for e in wire.of(DataReceived)] == [b"xyz", b"12345678"]


def test_try_alternate_moves_to_the_other_server() -> None:
    harness = make_server(allow=ALLOW)
    config = ClientConfig(server=("203.0.113.9", 3478), username="alice", password="wonderland")
    client = TurnClient(config, 0.0)
    client.allocate(0.0)
    first = parse(client.datagrams_to_send(0.0)[0])
    redirect = (
        MessageBuilder.response_to(first, error=True)
        .add_error_code(ErrorCode.TRY_ALTERNATE)
        .add_address(AttributeType.ALTERNATE_SERVER, SERVER)
        .encode()
    )
    client.receive(redirect, 0.0)
    assert client.next_event() == Redirected(server=SERVER)
    assert client.server == SERVER
    wire = Wire(harness, client)
    wire.flush()
    assert wire.of(Allocated)
