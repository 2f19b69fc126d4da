"""The ICE agent wired to a second agent over a fake network with a fake clock
(RFC 8445 §6-§8): connectivity, NATs, nomination, role conflicts. No sockets, no
sleeps; time only moves when `Network.run_until` moves it."""

from __future__ import annotations

import random

import pytest

from peerline.ice.agent import NOMINATION_ATTEMPTS, Agent
from peerline.ice.candidate import Candidate, CandidateType
from peerline.ice.config import IceConfig, Nomination, Role
from peerline.ice.events import (
    CandidatePairSucceeded,
    Completed,
    NewPeerReflexiveCandidate,
    RoleChanged,
    SelectedPairChanged,
)
from peerline.ice.states import ChecklistState
from peerline.stun import AttributeType, ErrorCode, MessageClass, TransportAddress
from tests.unit.ice_network import Filtering, Host, Mapping, Nat, Network, Packet, signal

AGGRESSIVE = IceConfig(nomination=Nomination.AGGRESSIVE, ice_options=("trickle",))
"""An RFC 5245 peer: nominates every check, does not advertise ice2."""

A_HOST = TransportAddress("10.0.1.2", 5000)
A_HOST2 = TransportAddress("10.0.1.3", 5002)
B_HOST = TransportAddress("10.0.2.2", 6000)
B_HOST2 = TransportAddress("10.0.2.3", 6002)


def make_agent(
    role: Role, *, tie_breaker: int, config: IceConfig | None = None, name: str = "ice"
) -> Agent:
    return Agent(
        role=role,
        config=config,
        tie_breaker=tie_breaker,
        rng=random.Random(f"{name}:{tie_breaker}"),
        name=name,
    )


def two_hosts(
    net: Network,
    *,
    a_addresses: list[TransportAddress] | None = None,
    b_addresses: list[TransportAddress] | None = None,
    a_nat: Nat | None = None,
    b_nat: Nat | None = None,
    a_role: Role = Role.CONTROLLING,
    b_role: Role = Role.CONTROLLED,
    a_config: IceConfig | None = None,
    b_config: IceConfig | None = None,
    a_tie: int = 2,
    b_tie: int = 1,
) -> tuple[Host, Host]:
    a = net.add(
        "a",
        make_agent(a_role, tie_breaker=a_tie, config=a_config, name="a"),
        a_addresses or [A_HOST],
        a_nat,
    )
    b = net.add(
        "b",
        make_agent(b_role, tie_breaker=b_tie, config=b_config, name="b"),
        b_addresses or [B_HOST],
        b_nat,
    )
    return a, b


def connect(net: Network, a: Host, b: Host, *, relay: bool = False) -> None:
    net.gather(a, relay=relay)
    net.gather(b, relay=relay)
    signal(a, b)
    signal(b, a)


def completed(*hosts: Host) -> bool:
    return all(h.of_type(Completed) for h in hosts)


def same_selection(a: Host, b: Host) -> tuple[TransportAddress, TransportAddress]:
    """Both agents selected one path (each one's base is the other's destination,
    after NAT): return a's (base, destination)."""
    pa, pb = a.agent.selected_pair(), b.agent.selected_pair()
    assert pa is not None
    assert pb is not None
    assert pa.local.address == pb.remote.address
    assert pb.local.address == pa.remote.address
    return pa.base, pa.destination


def stun_from(net: Network, sender: str) -> list[tuple[Packet, object]]:
    return [(p, m) for p in net.sent if p.sender == sender and (m := p.stun) is not None]


# -- host candidates ---------------------------------------------------------------------


def test_host_to_host_completes_on_both_sides() -> None:
    net = Network()
    a, b = two_hosts(net)
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 5.0)
    assert a.agent.checklist_state is ChecklistState.COMPLETED
    assert b.agent.checklist_state is ChecklistState.COMPLETED
    assert same_selection(a, b) == (A_HOST, B_HOST)
    assert len(a.of_type(SelectedPairChanged)) == len(b.of_type(SelectedPairChanged)) == 1
    assert a.agent.selected_types() == (CandidateType.HOST, CandidateType.HOST)
    assert not a.of_type(NewPeerReflexiveCandidate)


def test_controlled_agent_completes_only_after_the_nomination() -> None:
    """The controlled side selects a pair only when the controlling side nominates it."""
    net = Network()
    a, b = two_hosts(net)
    connect(net, a, b)
    assert net.run_until(lambda: bool(b.of_type(CandidatePairSucceeded)), 5.0)
    assert b.agent.selected_pair() is None
    assert net.run_until(lambda: completed(b), 5.0)
    nominations = [
        p
        for p, m in stun_from(net, "a")
        if m.message_class is MessageClass.REQUEST and AttributeType.USE_CANDIDATE in m
    ]
    assert nominations
    assert b.time_of(Completed) >= nominations[0].time


# -- NATs: server-reflexive and peer-reflexive candidates ---------------------------------


def test_cone_nats_connect_on_server_reflexive_candidates() -> None:
    net = Network()
    a, b = two_hosts(net, a_nat=Nat("203.0.113.1"), b_nat=Nat("203.0.113.2", first_port=41000))
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 10.0)
    base, destination = same_selection(a, b)
    assert base == A_HOST
    assert destination.ip == "203.0.113.2"
    assert a.agent.selected_types() == (CandidateType.SERVER_REFLEXIVE,) * 2
    assert b.agent.selected_types() == (CandidateType.SERVER_REFLEXIVE,) * 2
    assert not a.of_type(NewPeerReflexiveCandidate)
    assert not b.of_type(NewPeerReflexiveCandidate)


def test_symmetric_nat_reveals_peer_reflexive_candidates_on_both_sides() -> None:
    """b's symmetric NAT gives a new port toward a: a learns b's address from b's
    check (remote prflx), b learns its own from a's answer (local prflx)."""
    net = Network()
    a, b = two_hosts(
        net,
        a_nat=Nat("203.0.113.1", filtering=Filtering.ENDPOINT_INDEPENDENT),
        b_nat=Nat("203.0.113.2", mapping=Mapping.ADDRESS_AND_PORT_DEPENDENT, first_port=41000),
    )
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 10.0)
    same_selection(a, b)
    learned_by_a = a.of_type(NewPeerReflexiveCandidate)
    learned_by_b = b.of_type(NewPeerReflexiveCandidate)
    assert [e.local for e in learned_by_a] == [False]
    assert [e.local for e in learned_by_b] == [True]
    b_srflx = next(c for c in b.agent.local_candidates if c.type is CandidateType.SERVER_REFLEXIVE)
    assert learned_by_a[0].candidate.address.ip == "203.0.113.2"
    assert learned_by_a[0].candidate.address != b_srflx.address
    assert learned_by_b[0].candidate.address == learned_by_a[0].candidate.address
    assert learned_by_b[0].candidate.related_address == B_HOST
    assert a.agent.selected_types() == (
        CandidateType.SERVER_REFLEXIVE,
        CandidateType.PEER_REFLEXIVE,
    )
    assert b.agent.selected_types() == (
        CandidateType.PEER_REFLEXIVE,
        CandidateType.SERVER_REFLEXIVE,
    )
    assert b_srflx not in [e.candidate for e in learned_by_b]  # prflx is never signalled
    assert all(c.type is not CandidateType.PEER_REFLEXIVE for c in b.agent.local_candidates)


def test_symmetric_nats_on_both_sides_fall_back_to_the_relay() -> None:
    net = Network()
    symmetric = {"mapping": Mapping.ADDRESS_AND_PORT_DEPENDENT}
    a, b = two_hosts(
        net,
        a_nat=Nat("203.0.113.1", **symmetric),
        b_nat=Nat("203.0.113.2", first_port=41000, **symmetric),
    )
    connect(net, a, b, relay=True)
    assert net.run_until(lambda: completed(a, b), 30.0)
    same_selection(a, b)
    types = a.agent.selected_types()
    assert types is not None
    assert CandidateType.RELAYED in types


# -- nomination (§8.1.1) --------------------------------------------------------------------


def block_until(
    net: Network, until: float, first: TransportAddress, second: TransportAddress
) -> list[Packet]:
    """A tap that drops what goes between two addresses (either way) before `until`;
    returns what it dropped."""
    dropped: list[Packet] = []

    def tap(packet: Packet) -> bool:
        if net.now < until and {packet.source, packet.destination} == {first, second}:
            dropped.append(packet)
            return False
        return True

    net.taps.append(tap)
    return dropped


def test_regular_nomination_waits_for_a_direct_pair_rather_than_take_the_relay() -> None:
    """The direct pair loses its first checks; the relayed pair succeeds first, but the
    controlling agent waits (up to nomination_delay) and nominates the direct one."""
    net = Network()
    a, b = two_hosts(net)
    dropped = block_until(net, 0.2, A_HOST, B_HOST)
    connect(net, a, b, relay=True)
    assert net.run_until(lambda: completed(a, b), 10.0)
    assert dropped
    succeeded = a.of_type(CandidatePairSucceeded)
    assert succeeded[0].pair.relayed
    assert same_selection(a, b) == (A_HOST, B_HOST)
    assert len(a.of_type(SelectedPairChanged)) == len(b.of_type(SelectedPairChanged)) == 1
    selected = a.agent.selected_pair()
    assert selected is not None
    assert selected.nominated
    assert not selected.relayed


def test_a_better_pair_that_stays_silent_is_not_waited_for_long() -> None:
    """Across NATs the host pairs checked first never answer. Once a direct pair is
    valid, a better one is waited for only about two of its round trips, not the
    whole nomination_delay (which would cost every connection half a second)."""
    net = Network()
    a, b = two_hosts(net, a_addresses=[A_HOST, A_HOST2], b_addresses=[B_HOST, B_HOST2])
    block_until(net, 1000.0, A_HOST, B_HOST)
    connect(net, a, b)
    assert net.run_until(lambda: bool(a.of_type(CandidatePairSucceeded)), 10.0)
    first_valid = net.now
    assert net.run_until(lambda: a.agent.selected_pair() is not None, 10.0)
    config = a.agent.config
    assert net.now < first_valid + config.nomination_delay
    assert net.run_until(lambda: completed(a, b), 10.0)
    assert same_selection(a, b) != (A_HOST, B_HOST)


def nominations_by_a(net: Network, base: TransportAddress | None = None) -> set[bytes]:
    """The transactions of a's checks with USE-CANDIDATE (sent from `base`, if given)."""
    return {
        m.transaction_id
        for p in net.sent
        if p.sender == "a"
        and base in (None, p.source)
        and (m := p.stun) is not None
        and m.use_candidate
    }


def test_a_nomination_whose_answers_are_all_lost_is_sent_again() -> None:
    """b gets the nomination and selects the pair; every answer to it is lost.
    a tries again (a new transaction) instead of failing the pair."""
    net = Network()
    a, b = two_hosts(net)
    first_nomination: list[bytes] = []

    def tap(packet: Packet) -> bool:
        message = packet.stun
        if message is None:
            return True
        if packet.sender == "a" and message.use_candidate and not first_nomination:
            first_nomination.append(message.transaction_id)
        return not (
            packet.sender == "b"
            and message.message_class is MessageClass.SUCCESS
            and message.transaction_id in first_nomination
        )

    net.taps.append(tap)
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 120.0)
    assert len(nominations_by_a(net)) == 2
    assert a.time_of(Completed) > 30.0  # after the first one timed out
    assert same_selection(a, b) == (A_HOST, B_HOST)


def test_the_next_pair_nominated_gets_its_own_attempts() -> None:
    """Every nomination over the best pair is lost, so a gives it up after
    NOMINATION_ATTEMPTS and nominates the next valid pair; that one loses its first
    nomination too, and is tried again rather than failing the checklist."""
    net = Network()
    a, b = two_hosts(net, a_addresses=[A_HOST, A_HOST2])
    second: list[bytes] = []

    def tap(packet: Packet) -> bool:
        message = packet.stun
        if message is None or packet.sender != "a" or not message.use_candidate:
            return True
        if packet.source == A_HOST:
            return False
        second.append(message.transaction_id)
        return message.transaction_id != second[0]

    net.taps.append(tap)
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 300.0)
    assert len(nominations_by_a(net, A_HOST)) == NOMINATION_ATTEMPTS
    assert len(nominations_by_a(net, A_HOST2)) == 2
    assert same_selection(a, b) == (A_HOST2, B_HOST)


def test_aggressive_peer_is_accepted_and_a_better_later_nomination_wins() -> None:
    """a nominates every check (RFC 5245 aggressive); b selects the first pair that
    works, then switches when the better pair's retransmitted check succeeds."""
    net = Network()
    a, b = two_hosts(
        net,
        a_addresses=[A_HOST, A_HOST2],
        b_addresses=[B_HOST],
        a_config=AGGRESSIVE,
    )
    block_until(net, 0.2, A_HOST, B_HOST)
    connect(net, a, b)
    assert net.run_until(lambda: len(b.of_type(SelectedPairChanged)) >= 2 and completed(a, b), 10.0)
    first, last = b.of_type(SelectedPairChanged)[0], b.of_type(SelectedPairChanged)[-1]
    assert first.pair.remote.address == A_HOST2
    assert last.pair.remote.address == A_HOST
    assert last.pair.priority > first.pair.priority
    assert same_selection(a, b) == (A_HOST, B_HOST)


# -- role conflicts (§7.2.5.1, §7.3.1.1) ----------------------------------------------------


def role_conflict_answers(net: Network) -> list[Packet]:
    return [
        p
        for p in net.sent
        if (m := p.stun) is not None
        and m.message_class is MessageClass.ERROR
        and m.error_code is not None
        and m.error_code.code == ErrorCode.ROLE_CONFLICT
    ]


@pytest.mark.parametrize(
    ("role", "ties", "switcher", "b_answers_487"),
    [
        # both controlling, a smaller: b answers 487, a switches
        (Role.CONTROLLING, (5, 9), "a", True),
        # both controlling, a larger: b switches on receipt, answering success
        (Role.CONTROLLING, (9, 5), "b", False),
        # both controlled, a larger: b answers 487, a takes control
        (Role.CONTROLLED, (9, 5), "a", True),
        # both controlled, a smaller: b takes control on receipt
        (Role.CONTROLLED, (5, 9), "b", False),
    ],
    ids=["controlling-487", "controlling-silent", "controlled-487", "controlled-silent"],
)
def test_role_conflicts_leave_the_larger_tie_breaker_controlling(
    role: Role, ties: tuple[int, int], switcher: str, b_answers_487: bool
) -> None:
    """RFC 8445 §7.3.1.1 and §7.2.5.1: whoever learns of the conflict first either
    answers 487 (it keeps its role) or switches silently; the larger tie-breaker
    controls in the end, the other agent switched exactly once."""
    net = Network()
    a, b = two_hosts(net, a_role=role, b_role=role, a_tie=ties[0], b_tie=ties[1])
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 10.0)
    winner, loser = (a, b) if ties[0] > ties[1] else (b, a)
    assert (winner.agent.role, loser.agent.role) == (Role.CONTROLLING, Role.CONTROLLED)
    switched = a if switcher == "a" else b
    stayed = b if switcher == "a" else a
    assert switched.of_type(RoleChanged) == [RoleChanged(role=switched.agent.role)]
    assert not stayed.of_type(RoleChanged)
    assert ("b" in {p.sender for p in role_conflict_answers(net)}) is b_answers_487
    same_selection(a, b)


@pytest.mark.parametrize("role", [Role.CONTROLLING, Role.CONTROLLED])
def test_equal_tie_breakers_are_redrawn_instead_of_flip_flopping(role: Role) -> None:
    net = Network()
    a, b = two_hosts(net, a_role=role, b_role=role, a_tie=7, b_tie=7)
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 10.0)
    assert {a.agent.role, b.agent.role} == {Role.CONTROLLING, Role.CONTROLLED}
    assert a.agent.tie_breaker != b.agent.tie_breaker
    same_selection(a, b)


# -- components, loss and delay -------------------------------------------------------------


def test_two_components_complete_only_when_both_are_nominated() -> None:
    net = Network()
    a = net.add(
        "a",
        Agent(role=Role.CONTROLLING, components=2, tie_breaker=2, name="a"),
        [A_HOST, A_HOST2],
    )
    b = net.add(
        "b",
        Agent(role=Role.CONTROLLED, components=2, tie_breaker=1, name="b"),
        [B_HOST, B_HOST2],
    )
    for host in (a, b):
        first, second = host.addresses
        host.agent.add_local_candidate(Candidate.host(first, component=1))
        host.agent.add_local_candidate(Candidate.host(second, component=2))
        host.agent.end_of_local_candidates()
    net.taps.append(lambda p: net.now >= 1.0 or A_HOST2 not in (p.source, p.destination))
    signal(a, b)
    signal(b, a)
    assert net.run_until(lambda: bool(a.of_type(SelectedPairChanged)), 1.0)
    assert not a.of_type(Completed)  # component 2 is still held back
    assert net.run_until(lambda: completed(a, b), 10.0)
    for component, (mine, theirs) in {1: (A_HOST, B_HOST), 2: (A_HOST2, B_HOST2)}.items():
        pa, pb = a.agent.selected_pair(component), b.agent.selected_pair(component)
        assert pa is not None
        assert pb is not None
        assert (pa.base, pa.destination) == (mine, theirs)
        assert (pb.base, pb.destination) == (theirs, mine)


@pytest.mark.parametrize("seed", range(6))
def test_lossy_slow_network_still_connects_through_nats(seed: int) -> None:
    """20 % loss each way and 300 ms RTT (more than the first RTO), an
    address-restricted cone facing a symmetric NAT."""
    net = Network(delay=0.15, loss=0.2, seed=seed)
    a, b = two_hosts(
        net,
        a_nat=Nat("203.0.113.1", filtering=Filtering.ADDRESS_DEPENDENT),
        b_nat=Nat("203.0.113.2", mapping=Mapping.ADDRESS_AND_PORT_DEPENDENT, first_port=41000),
    )
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 60.0)
    same_selection(a, b)


def test_a_signalled_candidate_replaces_the_peer_reflexive_one_learned_first() -> None:
    """b's check beats b's candidates to a: a learns b's address as prflx; when the
    signalled host candidate comes, the pair takes its type and priority, and both
    agents agree on the pair's priority (RFC 8445 §6.1.2.3)."""
    net = Network()
    a, b = two_hosts(net)
    net.gather(a)
    net.gather(b)
    signal(a, b)
    creds = b.agent.local_credentials
    a.agent.set_remote_credentials(creds.ufrag, creds.pwd, options=b.agent.config.ice_options)
    assert net.run_until(lambda: bool(a.of_type(NewPeerReflexiveCandidate)), 1.0)
    assert [c.type for c in a.agent.remote_candidates] == [CandidateType.PEER_REFLEXIVE]
    signal(b, a)
    assert [c.type for c in a.agent.remote_candidates] == [CandidateType.HOST]
    assert net.run_until(lambda: completed(a, b), 5.0)
    assert a.agent.selected_types() == (CandidateType.HOST, CandidateType.HOST)
    pa, pb = a.agent.selected_pair(), b.agent.selected_pair()
    assert pa is not None
    assert pb is not None
    assert pa.priority == pb.priority
