"""Candidates: priorities and foundations (RFC 8445 §5.1), SDP syntax (RFC 8839 §5)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.ice.candidate import (
    Candidate,
    CandidateType,
    TransportProtocol,
    candidate_priority,
    compute_foundation,
    peer_reflexive_priority,
)
from peerline.ice.errors import MalformedAttribute
from peerline.ice.sdp import (
    Credentials,
    EndOfCandidates,
    IceLite,
    IceOptions,
    IcePacing,
    IcePwd,
    IceUfrag,
    RemoteCandidate,
    RemoteCandidates,
    format_attribute,
    parse_attribute,
)
from peerline.stun import TransportAddress

# -- priority (RFC 8445 §5.1.2) ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "component", "expected"),
    [
        # 2^24 * type preference + 2^8 * 65535 + (256 - component)
        (CandidateType.HOST, 1, 2130706431),
        (CandidateType.HOST, 2, 2130706430),
        (CandidateType.PEER_REFLEXIVE, 1, 1862270975),
        (CandidateType.SERVER_REFLEXIVE, 1, 1694498815),
        (CandidateType.RELAYED, 1, 16777215),
    ],
)
def test_priority_formula_with_recommended_type_preferences(
    kind: CandidateType, component: int, expected: int
) -> None:
    """RFC 8445 §5.1.2.1 with the §5.1.2.2 type preferences 126/110/100/0."""
    assert candidate_priority(kind, component=component) == expected


def test_local_preference_orders_addresses_of_one_type() -> None:
    """RFC 8445 §5.1.2.1: the local preference sits in bits 8-23."""
    low = candidate_priority(CandidateType.HOST, local_preference=0)
    high = candidate_priority(CandidateType.HOST, local_preference=65535)
    assert high - low == 65535 << 8
    assert low == 126 << 24 | 255


def test_priority_arguments_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="local preference"):
        candidate_priority(CandidateType.HOST, local_preference=65536)
    with pytest.raises(ValueError, match="component"):
        candidate_priority(CandidateType.HOST, component=0)


def test_check_priority_takes_the_peer_reflexive_type_preference() -> None:
    """RFC 8445 §7.1.1: PRIORITY is the local candidate's with type preference 110."""
    host = candidate_priority(CandidateType.HOST, local_preference=1000, component=2)
    assert peer_reflexive_priority(host) == candidate_priority(
        CandidateType.PEER_REFLEXIVE, local_preference=1000, component=2
    )


# -- foundation (RFC 8445 §5.1.1.3) -----------------------------------------------


def test_foundation_is_shared_only_by_same_type_base_server_and_transport() -> None:
    srflx = CandidateType.SERVER_REFLEXIVE
    one = compute_foundation(srflx, "10.0.0.1", server_ip="192.0.2.1")
    assert one == compute_foundation(srflx, "10.0.0.1", server_ip="192.0.2.1")
    assert one != compute_foundation(srflx, "10.0.0.2", server_ip="192.0.2.1")
    assert one != compute_foundation(srflx, "10.0.0.1", server_ip="192.0.2.2")
    assert one != compute_foundation(CandidateType.RELAYED, "10.0.0.1", server_ip="192.0.2.1")
    assert one != compute_foundation(
        srflx, "10.0.0.1", server_ip="192.0.2.1", transport=TransportProtocol.TCP
    )


def test_constructors_fill_type_priority_foundation_and_related_address() -> None:
    host = Candidate.host(("10.0.0.1", 5000))
    srflx = Candidate.server_reflexive(
        ("203.0.113.5", 6000), base=("10.0.0.1", 5000), server=("192.0.2.1", 3478)
    )
    relay = Candidate.relayed(
        ("192.0.2.1", 50000), mapped=("203.0.113.5", 6000), server=("192.0.2.1", 3478)
    )
    assert (host.type, host.priority, host.related_address) == (
        CandidateType.HOST,
        2130706431,
        None,
    )
    assert srflx.related_address == ("10.0.0.1", 5000)
    assert srflx.priority == 1694498815
    assert relay.related_address == ("203.0.113.5", 6000)
    assert relay.priority == 16777215
    assert len({host.foundation, srflx.foundation, relay.foundation}) == 3


# -- SDP syntax (RFC 8839 §5.1) ---------------------------------------------------

RFC8839_HOST = "a=candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host"
RFC8839_SRFLX = (
    "a=candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998"
)


def test_rfc8839_example_candidates_parse() -> None:
    """The two candidates of the RFC 8839 §8 example offer."""
    host = Candidate.from_sdp(RFC8839_HOST)
    srflx = Candidate.from_sdp(RFC8839_SRFLX)
    assert host == Candidate(
        foundation="1",
        component=1,
        priority=2130706431,
        address=TransportAddress("203.0.113.141", 8998),
        type=CandidateType.HOST,
    )
    assert srflx.type is CandidateType.SERVER_REFLEXIVE
    assert srflx.related_address == ("203.0.113.141", 8998)
    assert "a=" + host.to_sdp() == RFC8839_HOST
    assert "a=" + srflx.to_sdp() == RFC8839_SRFLX


def test_browser_candidate_with_extensions_and_lowercase_transport() -> None:
    """WebRTC writes `udp` and appends generation/network-cost; both are kept."""
    line = (
        "candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx "
        "raddr 10.0.0.5 rport 61665 generation 0 network-cost 999"
    )
    candidate = Candidate.from_sdp(line)
    assert candidate.transport is TransportProtocol.UDP
    assert candidate.extensions == (("generation", "0"), ("network-cost", "999"))
    assert Candidate.from_sdp(candidate.to_sdp()) == candidate


def test_ipv6_and_mdns_names() -> None:
    """IPv6 literals are made canonical; host names (mDNS) parse but are unresolved."""
    v6 = Candidate.from_sdp("candidate:1 1 UDP 2130706431 2001:DB8:0::1 9 typ host")
    assert v6.address == ("2001:db8::1", 9)
    assert v6.is_resolved
    mdns = Candidate.from_sdp(
        "candidate:1 1 UDP 2130706431 0b9a7f0e-2c2b-4d7e-9d5a-1c8f3a1b2c3d.local 9 typ host"
    )
    assert not mdns.is_resolved
    assert mdns.with_address(("192.0.2.9", 9)).is_resolved


@pytest.mark.parametrize(
    "line",
    [
        "",
        "candidate:",
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ",  # no type
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 host",  # no 'typ'
        "candidate:1 0 UDP 2130706431 192.0.2.1 9 typ host",  # component 0
        "candidate:1 257 UDP 2130706431 192.0.2.1 9 typ host",  # component > 256
        "candidate:1 1 UDP 0 192.0.2.1 9 typ host",  # priority 0
        "candidate:1 1 UDP 2147483648 192.0.2.1 9 typ host",  # priority 2^31
        "candidate:1 1 UDP -5 192.0.2.1 9 typ host",
        "candidate:1 1 UDP 2130706431 192.0.2.1 65536 typ host",
        "candidate:1 1 SCTP 2130706431 192.0.2.1 9 typ host",  # unknown transport
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ bogus",  # unknown type
        "candidate:1 1 UDP 2130706431 192.0.2.256 9 typ host",  # bad IPv4
        "candidate:1 1 UDP 2130706431 fe80::1%eth0 9 typ host",  # zone index
        "candidate:1 1 UDP 2130706431 a:b:c 9 typ host",
        "candidate:1 1 UDP 2130706431 x_y! 9 typ host",
        "candidate:1  1 UDP 2130706431 192.0.2.1 9 typ host",  # double space
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ host ",  # trailing space
        "candidate:f_o 1 UDP 2130706431 192.0.2.1 9 typ host",  # foundation not ice-chars
        "candidate:" + "a" * 33 + " 1 UDP 2130706431 192.0.2.1 9 typ host",
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ srflx raddr 10.0.0.1",
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ srflx rport 9",
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ host generation",  # odd extension
        "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ host rport 9",
        "candidate:1 1 UDP ２ 192.0.2.1 9 typ host",  # non-ASCII digit
        "b=candidate:1 1 UDP 2130706431 192.0.2.1 9 typ host",
    ],
)
def test_malformed_candidates_are_refused(line: str) -> None:
    with pytest.raises(MalformedAttribute):
        Candidate.from_sdp(line)


# -- the other attributes (RFC 8839 §5.2-5.6, RFC 8840) ----------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("a=ice-ufrag:8hhY", IceUfrag("8hhY")),
        ("a=ice-pwd:asd88fgpdd777uzjYhagZg", IcePwd("asd88fgpdd777uzjYhagZg")),
        ("a=ice-options:trickle ice2", IceOptions(("trickle", "ice2"))),
        ("a=end-of-candidates", EndOfCandidates()),
        ("a=ice-lite", IceLite()),
        ("a=ice-pacing:50", IcePacing(50)),
        (
            "a=remote-candidates:1 192.0.2.3 45664 2 2001:db8::1 45665",
            RemoteCandidates(
                (
                    RemoteCandidate(1, TransportAddress("192.0.2.3", 45664)),
                    RemoteCandidate(2, TransportAddress("2001:db8::1", 45665)),
                )
            ),
        ),
        (RFC8839_HOST, Candidate.from_sdp(RFC8839_HOST)),
    ],
)
def test_ice_attributes_parse_and_format(line: str, value: object) -> None:
    parsed = parse_attribute(line)
    assert parsed == value
    assert "a=" + format_attribute(parsed) == line


@pytest.mark.parametrize(
    "line",
    [
        "a=ice-ufrag:abc",  # 3 chars
        "a=ice-ufrag:ab_cd",
        "a=ice-pwd:short",
        "a=ice-options:",
        "a=ice-options:trickle  ice2",
        "a=end-of-candidates:now",
        "a=ice-lite:yes",
        "a=ice-pacing:fast",
        "a=remote-candidates:1 192.0.2.3",
        "a=remote-candidates:0 192.0.2.3 9",
        "a=remote-candidates:1 192.0.2.3 70000",
        "a=ice-mismatch",
        "a=rtpmap:0 PCMU/8000",
        "a=ice-ufrag",
    ],
)
def test_malformed_ice_attributes_are_refused(line: str) -> None:
    with pytest.raises(MalformedAttribute):
        parse_attribute(line)


def test_generated_credentials_meet_rfc8445_entropy_and_grammar() -> None:
    """RFC 8445 §5.3: >= 24 random bits in the ufrag, >= 128 in the password."""
    first, second = Credentials.generate(), Credentials.generate()
    assert first != second
    assert len(first.ufrag) * 6 >= 24
    assert len(first.pwd) * 6 >= 128
    assert parse_attribute(f"ice-ufrag:{first.ufrag}") == IceUfrag(first.ufrag)
    assert parse_attribute(f"ice-pwd:{first.pwd}") == IcePwd(first.pwd)


# -- properties --------------------------------------------------------------------

ice_chars = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/", min_size=1)
hosts = st.ip_addresses().map(str) | st.from_regex(
    r"[a-z0-9][a-z0-9\-]{3,20}\.local", fullmatch=True
)
addresses = st.builds(TransportAddress, hosts, st.integers(0, 65535))
token_names = st.from_regex(r"[a-zA-Z0-9\-_.]{1,12}", fullmatch=True).filter(
    lambda n: n not in ("raddr", "rport", "typ")
)
candidates = st.builds(
    Candidate,
    foundation=ice_chars.filter(lambda f: len(f) <= 32),
    component=st.integers(1, 256),
    transport=st.sampled_from(TransportProtocol),
    priority=st.integers(1, 2**31 - 1),
    address=addresses,
    type=st.sampled_from(CandidateType),
    related_address=st.none() | addresses,
    extensions=st.lists(
        st.tuples(token_names, st.from_regex(r"[\x21-\x7e]{1,10}", fullmatch=True)), max_size=3
    ).map(tuple),
)


@given(candidates)
def test_any_candidate_round_trips_through_sdp(candidate: Candidate) -> None:
    assert Candidate.from_sdp(candidate.to_sdp()) == candidate
    assert parse_attribute("a=" + candidate.to_sdp()) == candidate


def parse_or_refuse(line: str) -> None:
    """The parser's one rule: any text parses (and re-parses equal) or raises ours."""
    try:
        parsed = parse_attribute(line)
    except MalformedAttribute:
        return
    assert parse_attribute(format_attribute(parsed)) == parsed


@settings(max_examples=400)
@given(st.text(max_size=120))
def test_any_text_parses_or_raises_malformed_attribute(line: str) -> None:
    parse_or_refuse(line)


@settings(max_examples=400)
@given(
    st.sampled_from(
        [RFC8839_HOST, RFC8839_SRFLX, "a=ice-options:trickle", "a=ice-pwd:" + "p" * 22]
    ),
    st.integers(0, 100),
    st.text(max_size=3),
    st.integers(0, 3),
)
def test_mutated_attributes_parse_or_raise_malformed_attribute(
    line: str, where: int, insert: str, delete: int
) -> None:
    """Near-misses of valid lines are the likeliest garbage from a paste."""
    at = where % (len(line) + 1)
    parse_or_refuse(line[:at] + insert + line[at + delete :])
