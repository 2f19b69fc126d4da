"""Gathering without sockets: server URIs, the configuration, which host addresses are
used, and the `Gatherer` answering with a fake clock and hand-made STUN answers."""

import pytest

from peerline.errors import UsageError
from peerline.ice.candidate import CandidateType
from peerline.ice.gather import (
    CandidateGathered,
    CandidatePolicy,
    Gatherer,
    GatherEvent,
    IceTransportConfig,
    ServerFailed,
    StunServer,
    TurnServer,
    parse_stun_uri,
    parse_turn_uri,
    select_host_addresses,
)
from peerline.net import InterfaceAddress
from peerline.stun import (
    AttributeType,
    MessageBuilder,
    MessageClass,
    Method,
    Transport,
    TransportAddress,
    parse,
)

HOST = TransportAddress("10.0.0.2", 40000)
HOST6 = TransportAddress("2001:db8::2", 40002)
LOOP = TransportAddress("127.0.0.1", 40001)
STUN_A = TransportAddress("192.0.2.10", 3478)
STUN_B = TransportAddress("192.0.2.11", 3478)
MAPPED = ("198.51.100.7", 61000)
TURN = TransportAddress("192.0.2.20", 3478)


# -- URIs and configuration -----------------------------------------------------------


def test_stun_uris() -> None:
    assert parse_stun_uri("stun:192.0.2.1") == StunServer(host="192.0.2.1", port=3478)
    assert parse_stun_uri("stun:[2001:db8::1]:3479") == StunServer(host="2001:db8::1", port=3479)
    assert parse_stun_uri("stun.example.org:19302").port == 19302
    assert str(parse_stun_uri("stun:[::1]:5")) == "stun:[::1]:5"


@pytest.mark.parametrize(
    "uri", ["stun:", "stun:2001:db8::1", "stun:[::1", "stun:host:99999", "stuns:host"]
)
def test_bad_stun_uris_are_usage_errors(uri: str) -> None:
    with pytest.raises(UsageError):
        parse_stun_uri(uri)


def test_turn_uris() -> None:
    udp = parse_turn_uri("turn:192.0.2.1", "u", "p")
    assert (udp.port, udp.transport) == (3478, Transport.UDP)
    tcp = parse_turn_uri("turn:192.0.2.1:80?transport=tcp", "u", "p")
    assert (tcp.port, tcp.transport) == (80, Transport.TCP)
    tls = parse_turn_uri("turns:turn.example.org", "u", "p")
    assert (tls.port, tls.transport) == (5349, Transport.TLS)
    inline = parse_turn_uri("turn:alice:s%40cret@[2001:db8::1]:3479")
    assert (inline.username, inline.password, inline.host) == ("alice", "s@cret", "2001:db8::1")
    assert parse_turn_uri("turn:a:b@h", "given", "pw").username == "given"
    assert str(tcp) == "turn:192.0.2.1:80?transport=tcp"
    assert str(tls) == "turns:turn.example.org:5349"


@pytest.mark.parametrize(
    "uri",
    [
        "turn:192.0.2.1",  # no credentials
        "stun:u:p@192.0.2.1",
        "turn:u:p@192.0.2.1?transport=sctp",
        "turns:u:p@192.0.2.1?transport=udp",
        "turn:u:p@192.0.2.1?foo=bar",
        "turn:u:p@",
    ],
)
def test_bad_turn_uris_are_usage_errors(uri: str) -> None:
    with pytest.raises(UsageError):
        parse_turn_uri(uri)


def test_config_is_validated() -> None:
    with pytest.raises(UsageError, match="relay-only"):
        IceTransportConfig(policy=CandidatePolicy.RELAY)
    with pytest.raises(UsageError, match="port range"):
        IceTransportConfig(port_range=(5000, 4000))
    with pytest.raises(UsageError, match="not an IP"):
        IceTransportConfig(addresses=("localhost",))
    with pytest.raises(UsageError):
        IceTransportConfig(stun_timeout=0)
    assert IceTransportConfig(addresses=("::0001",)).addresses == ("::1",)


# -- host addresses ---------------------------------------------------------------------

INTERFACES = [
    InterfaceAddress("lo", "127.0.0.1"),
    InterfaceAddress("lo", "::1"),
    InterfaceAddress("eth0", "192.0.2.2"),
    InterfaceAddress("eth0", "2001:db8::2"),
    InterfaceAddress("eth0", "169.254.9.9"),
    InterfaceAddress("wlan0", "10.0.0.2"),
    InterfaceAddress("wlan0", "10.0.0.2"),
]


def test_host_addresses_leave_out_loopback_and_link_local_by_default() -> None:
    chosen = select_host_addresses(INTERFACES, IceTransportConfig())
    assert chosen == ["2001:db8::2", "192.0.2.2", "10.0.0.2"]


def test_host_addresses_on_request() -> None:
    config = IceTransportConfig(include_loopback=True, include_link_local=True)
    chosen = select_host_addresses(INTERFACES, config)
    assert chosen[-2:] == ["::1", "127.0.0.1"]  # loopback last
    assert "169.254.9.9" in chosen
    lo_only = IceTransportConfig(interfaces=("lo",), include_loopback=True, ipv6=False)
    assert select_host_addresses(INTERFACES, lo_only) == ["127.0.0.1"]
    given = IceTransportConfig(addresses=("127.0.0.2", "127.0.0.2"))
    assert select_host_addresses(INTERFACES, given) == ["127.0.0.2"]


# -- the gatherer -------------------------------------------------------------------------


def events(gatherer: Gatherer) -> list[GatherEvent]:
    found = []
    while (event := gatherer.next_event()) is not None:
        found.append(event)
    return found


def answer(request: bytes, mapped: tuple[str, int] | None) -> bytes:
    message = parse(request)
    kind = MessageClass.SUCCESS if mapped else MessageClass.ERROR
    builder = MessageBuilder(Method.BINDING, kind, message.transaction_id)
    if mapped is not None:
        builder.add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, mapped)
    return builder.encode(fingerprint=True)


def gatherer_with(*servers: TransportAddress, **options: object) -> Gatherer:
    config = IceTransportConfig(stun_timeout=2.0, **options)  # type: ignore[arg-type]
    gatherer = Gatherer(config)
    for index, address in enumerate(servers):
        gatherer.add_stun_server_address(StunServer(host=f"192.0.2.{index}"), address, now=0.0)
    return gatherer


def test_host_candidate_at_once_then_one_query_per_server_of_its_family() -> None:
    gatherer = gatherer_with(STUN_A, STUN_B)
    gatherer.add_host(HOST, now=0.0)
    gatherer.add_host(HOST6, now=0.0)
    (host, host6) = events(gatherer)
    assert isinstance(host, CandidateGathered)
    assert host.candidate.type is CandidateType.HOST
    assert isinstance(host6, CandidateGathered)
    assert host.candidate.priority != host6.candidate.priority  # distinct local preferences
    sent = gatherer.datagrams_to_send(0.0)
    assert {(t.base, t.destination) for t in sent} == {(HOST, STUN_A), (HOST, STUN_B)}
    assert gatherer.get_timer() == pytest.approx(0.5)


def test_answers_become_srflx_deduplicated_across_servers() -> None:
    gatherer = gatherer_with(STUN_A, STUN_B)
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    for transmit in gatherer.datagrams_to_send(0.0):
        assert gatherer.receive(answer(transmit.data, MAPPED), HOST, now=0.1)
    (srflx,) = events(gatherer)
    assert isinstance(srflx, CandidateGathered)
    assert srflx.candidate.type is CandidateType.SERVER_REFLEXIVE
    assert srflx.candidate.address == MAPPED
    assert srflx.candidate.related_address == HOST
    assert srflx.base == HOST
    gatherer.finish()
    assert gatherer.done
    assert gatherer.get_timer() is None


def test_a_mapped_address_equal_to_the_base_is_redundant() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    (transmit,) = gatherer.datagrams_to_send(0.0)
    assert gatherer.receive(answer(transmit.data, HOST), HOST, now=0.1)
    assert events(gatherer) == []


def test_a_dead_server_costs_its_timeout_and_is_reported() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.add_host(HOST, now=0.0)
    gatherer.finish()
    events(gatherer)
    now, sends = 0.0, 0
    for _ in range(100):
        sends += len(gatherer.datagrams_to_send(now))
        deadline = gatherer.get_timer()
        if deadline is None:
            break
        now = deadline
        gatherer.handle_timer(now)
    assert now == pytest.approx(2.0)  # stun_timeout, not the 39.5 s of a full transaction
    assert sends >= 2  # retransmitted before giving up
    (failed,) = events(gatherer)
    assert isinstance(failed, ServerFailed)
    assert failed.base == HOST
    assert "no answer" in failed.reason
    assert gatherer.done


def test_error_answers_and_strangers() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    (transmit,) = gatherer.datagrams_to_send(0.0)
    assert not gatherer.receive(b"\x00\x01garbage", HOST, now=0.1)
    assert not gatherer.receive(answer(transmit.data, MAPPED), LOOP, now=0.1)  # other socket
    other = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode()
    assert not gatherer.receive(answer(other, MAPPED), HOST, now=0.1)  # not our transaction
    assert gatherer.receive(answer(transmit.data, None), HOST, now=0.1)
    (failed,) = events(gatherer)
    assert isinstance(failed, ServerFailed)


def test_loopback_sockets_do_not_ask_remote_servers() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.add_host(LOOP, now=0.0)
    assert gatherer.datagrams_to_send(0.0) == []


def test_relay_gives_relayed_and_mapped_candidates_once() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    (transmit,) = gatherer.datagrams_to_send(0.0)
    gatherer.receive(answer(transmit.data, MAPPED), HOST, now=0.1)
    events(gatherer)
    relayed = ("192.0.2.20", 50000)
    gatherer.add_relayed(relayed, MAPPED, server=TURN, base=HOST)
    found = events(gatherer)
    kinds = [e.candidate.type for e in found if isinstance(e, CandidateGathered)]
    assert kinds == [CandidateType.RELAYED]  # the same srflx again is not repeated
    (relay,) = found
    assert isinstance(relay, CandidateGathered)
    assert relay.base == relayed
    assert relay.candidate.related_address == MAPPED


def test_relay_only_policy_signals_relays_alone() -> None:
    turn = TurnServer(host="192.0.2.20", username="u", password="p")
    gatherer = gatherer_with(STUN_A, turn_servers=(turn,), policy=CandidatePolicy.RELAY)
    gatherer.add_host(HOST, now=0.0)
    assert gatherer.datagrams_to_send(0.0) == []  # nothing reflexive is asked for
    gatherer.add_relayed(("192.0.2.20", 50000), MAPPED, server=TURN, base=HOST)
    found = events(gatherer)
    assert [e.candidate.type for e in found if isinstance(e, CandidateGathered)] == [
        CandidateType.RELAYED
    ]
