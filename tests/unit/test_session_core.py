"""Two session cores wired through a simulated link with a hand-advanced clock: the
pinned handshake (and its refusal on either side), streams, messages, loss,
keep-alive, idle timeout, a lost path, garbage and flow control. No sockets, no sleeps."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import ssl
from dataclasses import dataclass, field

import pytest
from aioquic.quic.configuration import QuicConfiguration
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.session.config import ALPN, SessionConfig, SessionRole
from peerline.session.core import PATH_ADDRESS, SessionCore, SessionState
from peerline.session.errors import EndReason, SessionUsageError
from peerline.session.events import (
    Connected,
    Ended,
    IncomingStream,
    MessageReceived,
    SessionEvent,
    StreamAborted,
    StreamData,
)
from peerline.session.identity import Fingerprint, HashFunction, Identity
from peerline.session.pinned_quic import PinnedQuicConnection

ALICE = Identity.ephemeral("alice")
BOB = Identity.ephemeral("bob")
MALLORY = Identity.ephemeral("mallory")


@dataclass
class Link:
    """Carries datagrams between a client and a server core with delay and seeded loss."""

    client: SessionCore
    server: SessionCore
    delay: float = 0.010
    loss: float = 0.0
    seed: int = 1
    now: float = 0.0
    up: bool = True
    events: dict[str, list[SessionEvent]] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    data: dict[tuple[str, int], bytearray] = field(default_factory=dict)
    finished: set[tuple[str, int]] = field(default_factory=set)
    _queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.events = {"client": [], "server": []}

    def core(self, name: str) -> SessionCore:
        return self.client if name == "client" else self.server

    def start(self) -> None:
        self.client.start(self.now)
        self.server.start(self.now)
        self._collect()

    def inject(self, name: str, data: bytes) -> None:
        """Hand `data` to one side as if it came from the path."""
        self.core(name).receive_datagram(data, self.now)
        self._collect()

    def _collect(self) -> None:
        for name, other in (("client", "server"), ("server", "client")):
            core = self.core(name)
            for data in core.datagrams_to_send(self.now):
                self.sent[name] += 1
                if self.up and self.rng.random() >= self.loss:
                    heapq.heappush(
                        self._queue, (self.now + self.delay, next(self._order), other, data)
                    )
            while (event := core.next_event()) is not None:
                self.events[name].append(event)
                if isinstance(event, StreamData):
                    self.data.setdefault((name, event.stream_id), bytearray()).extend(event.data)
                    if event.end_stream:
                        self.finished.add((name, event.stream_id))

    def step(self) -> bool:
        """Advance to the next delivery or timer; False when nothing is left to happen."""
        deadlines = [t for t in (self.client.get_timer(), self.server.get_timer()) if t]
        if self._queue:
            deadlines.append(self._queue[0][0])
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        while self._queue and self._queue[0][0] <= self.now:
            _, _, name, data = heapq.heappop(self._queue)
            self.core(name).receive_datagram(data, self.now)
        for core in (self.client, self.server):
            timer = core.get_timer()
            if timer is not None and timer <= self.now:
                core.handle_timer(self.now)
        self._collect()
        return True

    def run_until(self, done: object, *, max_steps: int = 200_000, until: float = 3600) -> None:
        """Step until `done()` holds; fails the test if it never does within the bounds."""
        assert callable(done)
        for _ in range(max_steps):
            if done():
                return
            if self.now > until or not self.step():
                break
        assert done(), f"condition not reached by t={self.now:.3f}"

    def of_type(self, name: str, kind: type[SessionEvent]) -> list[SessionEvent]:
        return [event for event in self.events[name] if isinstance(event, kind)]

    def ended(self, name: str) -> Ended | None:
        ends = self.of_type(name, Ended)
        assert len(ends) <= 1, "Ended must be emitted once"
        return ends[0] if ends else None  # type: ignore[return-value]

    def connect(self) -> None:
        self.start()
        self.run_until(
            lambda: (
                self.client.state is SessionState.CONNECTED
                and self.server.state is SessionState.CONNECTED
            ),
            until=10,
        )


def make_link(
    *,
    client_pins: Identity = BOB,
    server_pins: Identity = ALICE,
    config: SessionConfig | None = None,
    **link: float,
) -> Link:
    client = SessionCore(
        role=SessionRole.CLIENT,
        identity=ALICE,
        peer_fingerprint=client_pins.fingerprint,
        config=config,
    )
    server = SessionCore(
        role=SessionRole.SERVER,
        identity=BOB,
        peer_fingerprint=server_pins.fingerprint,
        config=config,
    )
    return Link(client, server, **link)  # type: ignore[arg-type]


def received(link: Link, name: str, stream_id: int) -> tuple[bytes, bool]:
    """All data of one stream a side has seen, and whether its EOF came."""
    key = (name, stream_id)
    return bytes(link.data.get(key, b"")), key in link.finished


# -- the handshake ---------------------------------------------------------------------------


def test_handshake_with_the_right_fingerprints_connects_both_sides() -> None:
    link = make_link()
    link.connect()
    [client_connected] = link.of_type("client", Connected)
    [server_connected] = link.of_type("server", Connected)
    assert client_connected.peer_fingerprint == BOB.fingerprint  # type: ignore[attr-defined]
    assert server_connected.peer_fingerprint == ALICE.fingerprint  # type: ignore[attr-defined]
    assert link.ended("client") is None
    assert link.ended("server") is None


def test_client_refuses_a_server_whose_certificate_does_not_match() -> None:
    link = make_link(client_pins=MALLORY)
    link.start()
    link.run_until(lambda: link.ended("client") and link.ended("server"), until=10)
    client_end, server_end = link.ended("client"), link.ended("server")
    assert client_end is not None
    assert server_end is not None
    assert client_end.reason is EndReason.FINGERPRINT_MISMATCH
    assert MALLORY.fingerprint.hex in client_end.detail
    assert BOB.fingerprint.hex in client_end.detail
    assert server_end.reason is EndReason.REFUSED_BY_PEER
    assert "0x12a" in server_end.detail  # CRYPTO_ERROR + TLS bad_certificate
    assert not link.of_type("client", Connected)
    assert not link.of_type("server", Connected)


def test_server_refuses_a_client_whose_certificate_does_not_match() -> None:
    link = make_link(server_pins=MALLORY)
    link.start()
    link.run_until(lambda: link.ended("client") and link.ended("server"), until=10)
    client_end, server_end = link.ended("client"), link.ended("server")
    assert client_end is not None
    assert server_end is not None
    assert server_end.reason is EndReason.FINGERPRINT_MISMATCH
    assert client_end.reason is EndReason.REFUSED_BY_PEER
    # the client waited for the handshake to be confirmed, so it never believed it was connected
    assert not link.of_type("client", Connected)
    assert not link.of_type("server", Connected)


def test_server_refuses_a_client_that_presents_no_certificate() -> None:
    """TLS lets a client answer a certificate request with an empty Certificate; the gate
    in the core refuses it."""
    server = SessionCore(role=SessionRole.SERVER, identity=BOB, peer_fingerprint=ALICE.fingerprint)
    config = QuicConfiguration(alpn_protocols=[ALPN], is_client=True, verify_mode=ssl.CERT_NONE)
    anonymous = PinnedQuicConnection(configuration=config, expected=BOB.fingerprint)
    now = 0.0
    anonymous.connect(PATH_ADDRESS, now)
    server_events: list[SessionEvent] = []
    for _ in range(50):
        for data, _ in anonymous.datagrams_to_send(now):
            server.receive_datagram(data, now)
        for data in server.datagrams_to_send(now):
            anonymous.receive_datagram(data, PATH_ADDRESS, now)
        while (event := server.next_event()) is not None:
            server_events.append(event)
        if server.state is SessionState.ENDED:
            break
        now += 0.01
        server.handle_timer(now)
        anonymous.handle_timer(now)
    ends = [e for e in server_events if isinstance(e, Ended)]
    assert [e.reason for e in ends] == [EndReason.FINGERPRINT_MISMATCH]
    assert "no certificate" in ends[0].detail
    assert not any(isinstance(e, Connected) for e in server_events)


def test_server_drops_anything_before_a_valid_initial() -> None:
    link = make_link()
    for junk in (b"", b"\x00", b"\xc0" + b"\x00" * 1300, bytes(range(256)) * 5):
        link.inject("server", junk)
    assert link.server.state is SessionState.CONNECTING
    assert link.server.get_timer() is None
    link.connect()


def test_connecting_side_cannot_open_streams_yet() -> None:
    link = make_link()
    link.start()
    with pytest.raises(SessionUsageError):
        link.client.open_stream()
    with pytest.raises(SessionUsageError):
        link.server.send_message(b"early")


# -- data ------------------------------------------------------------------------------------


def _send_file(link: Link, sender: str, payload: bytes, chunk: int = 64 * 1024) -> int:
    """Write `payload` on a new stream, keeping at most ~1 MiB unacknowledged, then FIN."""
    core = link.core(sender)
    stream_id = core.open_stream()
    offset = 0
    while offset < len(payload):
        if core.unacknowledged(stream_id) < core.config.write_high_water:
            core.send_stream_data(stream_id, payload[offset : offset + chunk])
            offset += chunk
            link.step()
            link._collect()
        else:
            assert link.step()
    core.send_stream_data(stream_id, b"", end_stream=True)
    link._collect()
    return stream_id


def test_ten_megabytes_arrive_intact_on_a_stream() -> None:
    link = make_link()
    link.connect()
    payload = random.Random(7).randbytes(10 * 1024 * 1024)
    stream_id = _send_file(link, "client", payload)
    link.run_until(lambda: ("server", stream_id) in link.finished, until=600)
    data, _ = received(link, "server", stream_id)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert [e.stream_id for e in link.of_type("server", IncomingStream)] == [stream_id]  # type: ignore[attr-defined]


def test_a_path_losing_five_percent_still_delivers_everything_in_order() -> None:
    link = make_link(loss=0.05, seed=5)
    link.connect()
    payload = random.Random(8).randbytes(1024 * 1024)
    stream_id = _send_file(link, "server", payload, chunk=16 * 1024)
    for n in range(100):
        link.client.send_message(f"c{n}".encode())
        link.server.send_message(f"s{n}".encode())
    link._collect()
    link.run_until(
        lambda: (
            ("client", stream_id) in link.finished
            and len(link.of_type("client", MessageReceived)) == 100
            and len(link.of_type("server", MessageReceived)) == 100
        ),
        until=600,
    )
    assert received(link, "client", stream_id)[0] == payload
    assert [m.data for m in link.of_type("server", MessageReceived)] == [  # type: ignore[attr-defined]
        f"c{n}".encode() for n in range(100)
    ]
    assert [m.data for m in link.of_type("client", MessageReceived)] == [  # type: ignore[attr-defined]
        f"s{n}".encode() for n in range(100)
    ]
    assert link.ended("client") is None
    assert link.ended("server") is None


def test_messages_keep_their_boundaries_including_empty_and_large_ones() -> None:
    link = make_link()
    link.connect()
    sizes = [0, 1, 5, 1200, 70_000, 1024 * 1024]
    for size in sizes:
        link.client.send_message(bytes([size % 251]) * size)
    link._collect()
    link.run_until(lambda: len(link.of_type("server", MessageReceived)) == len(sizes))
    assert [len(m.data) for m in link.of_type("server", MessageReceived)] == sizes  # type: ignore[attr-defined]


def test_a_message_over_the_limit_is_refused_before_it_is_sent() -> None:
    link = make_link(config=SessionConfig(max_message_size=1000))
    link.connect()
    with pytest.raises(SessionUsageError, match="max_message_size"):
        link.client.send_message(b"x" * 1001)


def test_a_peer_whose_messages_exceed_our_limit_ends_the_session() -> None:
    client = SessionCore(
        role=SessionRole.CLIENT,
        identity=ALICE,
        peer_fingerprint=BOB.fingerprint,
        config=SessionConfig(max_message_size=4096),
    )
    server = SessionCore(
        role=SessionRole.SERVER,
        identity=BOB,
        peer_fingerprint=ALICE.fingerprint,
        config=SessionConfig(max_message_size=1024),
    )
    link = Link(client, server)
    link.connect()
    link.client.send_message(b"y" * 2048)
    link._collect()
    link.run_until(lambda: link.ended("server") and link.ended("client"), until=10)
    assert link.ended("server").reason is EndReason.PROTOCOL_ERROR  # type: ignore[union-attr]
    assert "limit" in link.ended("server").detail  # type: ignore[union-attr]
    assert link.ended("client").reason is EndReason.PROTOCOL_ERROR  # type: ignore[union-attr]


def test_a_reset_stream_is_reported_to_the_peer() -> None:
    link = make_link()
    link.connect()
    stream_id = link.client.open_stream()
    link.client.send_stream_data(stream_id, b"partial")
    link._collect()
    link.run_until(lambda: ("server", stream_id) in link.data)
    link.client.send_stream_data(stream_id, b"never acknowledged" * 10_000)
    assert link.client.unacknowledged() > 0
    link.client.reset_stream(stream_id)
    assert link.client.unacknowledged() == 0  # nothing left for a close to linger on
    link._collect()
    link.run_until(lambda: len(link.of_type("server", StreamAborted)) == 2)
    aborted = link.of_type("server", StreamAborted)
    # both directions: RESET_STREAM for what it sent, STOP_SENDING for what it would receive
    assert {(e.stream_id, e.reset) for e in aborted} == {(stream_id, True), (stream_id, False)}  # type: ignore[attr-defined]


def test_a_full_reader_holds_back_the_peer_and_releasing_it_lets_the_rest_through() -> None:
    link = make_link()
    link.connect()
    stream_id = link.client.open_stream()
    link.server.pause_stream(stream_id, True)
    payload = b"z" * (12 * 1024 * 1024)
    link.client.send_stream_data(stream_id, payload, end_stream=True)
    link._collect()
    link.run_until(lambda: link.now > 5)
    held, done = received(link, "server", stream_id)
    assert not done
    assert len(held) <= 2 * SessionConfig().stream_window  # credit stopped growing
    assert link.client.unacknowledged(stream_id) > 0
    link.server.pause_stream(stream_id, False)
    link.server.path_changed()  # any packet carries the new credit; a PING makes one
    link._collect()
    link.run_until(lambda: ("server", stream_id) in link.finished, until=60)
    assert received(link, "server", stream_id)[0] == payload


# -- liveness --------------------------------------------------------------------------------


def test_keepalive_holds_a_quiet_session_open_far_past_the_idle_timeout() -> None:
    link = make_link()
    link.connect()
    before = dict(link.sent)
    link.run_until(lambda: link.now > 300, until=400)
    assert link.ended("client") is None
    assert link.ended("server") is None
    pings = link.sent["client"] - before["client"] + link.sent["server"] - before["server"]
    # every 10 s at least one side speaks (and the other acknowledges)
    assert pings >= 300 / SessionConfig().keepalive_interval


def test_silence_from_the_peer_ends_the_session_with_idle_timeout() -> None:
    link = make_link()
    link.connect()
    connected_at = link.now
    link.up = False
    link.run_until(lambda: link.ended("client") and link.ended("server"), until=120)
    assert link.ended("client").reason is EndReason.IDLE_TIMEOUT  # type: ignore[union-attr]
    assert link.ended("server").reason is EndReason.IDLE_TIMEOUT  # type: ignore[union-attr]
    assert link.now - connected_at >= SessionConfig().idle_timeout


def test_path_lost_ends_the_session_at_once_with_its_reason() -> None:
    link = make_link()
    link.connect()
    link.client.path_lost("consent expired")
    link._collect()
    end = link.ended("client")
    assert end is not None
    assert end.reason is EndReason.PATH_LOST
    assert end.detail == "consent expired"
    with pytest.raises(SessionUsageError):
        link.client.open_stream()


def test_a_clean_close_tells_the_peer() -> None:
    link = make_link()
    link.connect()
    link.server.close()
    link._collect()
    link.run_until(lambda: link.ended("client") is not None)
    assert link.ended("server").reason is EndReason.LOCAL_CLOSE  # type: ignore[union-attr]
    assert link.ended("client").reason is EndReason.PEER_CLOSED  # type: ignore[union-attr]
    link.run_until(lambda: link.client.terminated and link.server.terminated, until=60)


# -- garbage ---------------------------------------------------------------------------------


def test_garbage_datagrams_do_not_disturb_a_connected_session() -> None:
    link = make_link()
    link.connect()
    rng = random.Random(3)
    real: list[bytes] = []
    stream_id = link.client.open_stream()
    link.client.send_stream_data(stream_id, b"before")
    real.extend(link.client.datagrams_to_send(link.now))
    for _ in range(300):
        junk = rng.randbytes(rng.randrange(0, 1500))
        link.inject(rng.choice(["client", "server"]), junk)
    for datagram in real:  # truncated and bit-flipped copies of real packets
        for cut in range(0, len(datagram), 7):
            link.inject("server", datagram[:cut])
        flipped = bytearray(datagram)
        flipped[len(flipped) // 2] ^= 0x40
        link.inject("server", bytes(flipped))
        link.inject("server", datagram)  # and the real one, for the stream to get through
    link.client.send_stream_data(stream_id, b" after", end_stream=True)
    link._collect()
    link.run_until(lambda: ("server", stream_id) in link.finished)
    assert received(link, "server", stream_id)[0] == b"before after"
    assert link.ended("client") is None
    assert link.ended("server") is None


_FUZZED: list[Link] = []


def _fuzzed_link() -> Link:
    if not _FUZZED:
        link = make_link()
        link.connect()
        _FUZZED.append(link)
    return _FUZZED[0]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=1500),
    first=st.integers(0, 255),
    side=st.sampled_from(["client", "server"]),
)
def test_any_datagram_is_dropped_or_handled_never_raised(
    data: bytes, first: int, side: str
) -> None:
    link = _fuzzed_link()
    core = link.core(side)
    # a first byte of every kind (long/short header, each packet type), then a real
    # connection ID half of the time, so the bytes reach aioquic's deeper parsing
    cid = link.server._quic.host_cid if side == "server" else link.client._quic.host_cid  # type: ignore[union-attr]
    for datagram in (bytes([first]) + data, bytes([first]) + cid + data):
        core.receive_datagram(datagram, link.now)
        assert core.state is SessionState.CONNECTED


def test_a_sha512_pin_is_honoured_like_a_sha256_one() -> None:
    strong = Fingerprint.of_certificate(BOB.certificate, HashFunction.SHA_512)
    client = SessionCore(role=SessionRole.CLIENT, identity=ALICE, peer_fingerprint=strong)
    server = SessionCore(role=SessionRole.SERVER, identity=BOB, peer_fingerprint=ALICE.fingerprint)
    link = Link(client, server)
    link.connect()
    wrong = Fingerprint.of_certificate(MALLORY.certificate, HashFunction.SHA_512)
    client = SessionCore(role=SessionRole.CLIENT, identity=ALICE, peer_fingerprint=wrong)
    server = SessionCore(role=SessionRole.SERVER, identity=BOB, peer_fingerprint=ALICE.fingerprint)
    link = Link(client, server)
    link.start()
    link.run_until(lambda: link.ended("client") is not None, until=10)
    end = link.ended("client")
    assert end is not None
    assert end.reason is EndReason.FINGERPRINT_MISMATCH
    assert Fingerprint.of_certificate(BOB.certificate, HashFunction.SHA_512).hex in end.detail
