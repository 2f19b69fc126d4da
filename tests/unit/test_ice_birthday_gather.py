"""Gathering learns how the NAT maps, without sockets: the same socket's mapped address
seen by two destinations (a server's RFC 5780 OTHER-ADDRESS, two STUN servers, or a
STUN and a TURN server), with hand-made STUN answers and a fake clock."""

from __future__ import annotations

from peerline.ice.birthday import BirthdayConfig, Mapping
from peerline.ice.candidate import CandidateType
from peerline.ice.gather import CandidateGathered, Gatherer, ServerFailed
from peerline.stun import AttributeType, MessageBuilder, TransportAddress, parse
from tests.unit.test_ice_gather import (
    HOST,
    HOST6,
    MAPPED,
    STUN_A,
    STUN_B,
    TURN,
    answer,
    events,
    gatherer_with,
)

OTHER = TransportAddress("192.0.2.110", 3479)
"""STUN_A's second address and port (RFC 5780 §7.4)."""


def answer_with_other(request: bytes, mapped: tuple[str, int]) -> bytes:
    message = parse(request)
    builder = MessageBuilder.response_to(message)
    builder.add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, mapped)
    builder.add_address(AttributeType.OTHER_ADDRESS, OTHER)
    return builder.encode(fingerprint=True)


def first_query(gatherer: Gatherer) -> bytes:
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    (transmit,) = gatherer.datagrams_to_send(0.0)
    assert transmit.destination == STUN_A
    return transmit.data


def test_other_address_is_asked_once_more_from_the_same_socket() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.finish()
    assert gatherer.receive(answer_with_other(first_query(gatherer), MAPPED), HOST, now=0.1)
    assert gatherer.mapping is Mapping.UNKNOWN  # one destination so far
    assert not gatherer.done  # gathering waits for the behaviour query
    (srflx,) = events(gatherer)
    assert isinstance(srflx, CandidateGathered)
    (again,) = gatherer.datagrams_to_send(0.1)
    assert (again.base, again.destination) == (HOST, OTHER)
    return_port = ("198.51.100.7", 61000)  # the same mapping: endpoint-independent
    assert gatherer.receive(answer(again.data, return_port), HOST, now=0.2)
    assert events(gatherer) == []  # not a candidate
    assert gatherer.mapping is Mapping.INDEPENDENT
    assert gatherer.done
    assert gatherer.datagrams_to_send(0.3) == []  # not asked a third time


def test_a_new_port_toward_the_other_address_is_a_dependent_mapping() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.receive(answer_with_other(first_query(gatherer), MAPPED), HOST, now=0.1)
    (again,) = gatherer.datagrams_to_send(0.1)
    gatherer.receive(answer(again.data, ("198.51.100.7", 33333)), HOST, now=0.2)
    assert gatherer.mapping is Mapping.DEPENDENT
    found = events(gatherer)
    assert [e.candidate.address for e in found if isinstance(e, CandidateGathered)] == [MAPPED]


def test_a_silent_other_address_leaves_it_unknown_and_is_no_server_failure() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.finish()
    gatherer.receive(answer_with_other(first_query(gatherer), MAPPED), HOST, now=0.1)
    events(gatherer)
    now = 0.1
    for _ in range(100):
        gatherer.datagrams_to_send(now)
        deadline = gatherer.get_timer()
        if deadline is None:
            break
        now = deadline
        gatherer.handle_timer(now)
    assert gatherer.done
    assert now <= 2.2  # one stun_timeout more at most
    assert not [e for e in events(gatherer) if isinstance(e, ServerFailed)]
    assert gatherer.mapping is Mapping.UNKNOWN


def test_two_stun_servers_decide_without_other_address() -> None:
    gatherer = gatherer_with(STUN_A, STUN_B)
    gatherer.add_host(HOST, now=0.0)
    events(gatherer)
    sent = gatherer.datagrams_to_send(0.0)
    ports = {STUN_A: 61000, STUN_B: 61002}
    for transmit in sent:
        mapped = ("198.51.100.7", ports[transmit.destination])
        gatherer.receive(answer(transmit.data, mapped), HOST, now=0.1)
    assert gatherer.mapping is Mapping.DEPENDENT
    assert gatherer.datagrams_to_send(0.1) == []  # no OTHER-ADDRESS: nothing more asked


def test_the_turn_servers_view_counts_only_from_another_destination() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.receive(answer(first_query(gatherer), MAPPED), HOST, now=0.1)
    gatherer.add_relayed(("192.0.2.20", 50000), MAPPED, server=STUN_A, base=HOST)
    assert gatherer.mapping is Mapping.UNKNOWN  # the same server: no second opinion
    gatherer.add_relayed(("192.0.2.20", 50002), ("198.51.100.7", 40404), server=TURN, base=HOST)
    assert gatherer.mapping is Mapping.DEPENDENT


def test_no_nat_is_independent_and_ipv6_does_not_count() -> None:
    gatherer = gatherer_with(STUN_A)
    gatherer.receive(answer(first_query(gatherer), HOST), HOST, now=0.1)
    assert gatherer.mapping is Mapping.INDEPENDENT
    six = gatherer_with(TransportAddress("2001:db8::10", 3478))
    six.add_host(HOST6, now=0.0)
    (transmit,) = six.datagrams_to_send(0.0)
    six.receive(answer(transmit.data, HOST6), HOST6, now=0.1)
    assert six.mapping is Mapping.UNKNOWN


def test_with_the_technique_off_other_address_is_not_asked() -> None:
    gatherer = gatherer_with(STUN_A, birthday=BirthdayConfig(enabled=False))
    gatherer.receive(answer_with_other(first_query(gatherer), MAPPED), HOST, now=0.1)
    assert gatherer.datagrams_to_send(0.1) == []
    (srflx,) = events(gatherer)
    assert isinstance(srflx, CandidateGathered)
    assert srflx.candidate.type is CandidateType.SERVER_REFLEXIVE
