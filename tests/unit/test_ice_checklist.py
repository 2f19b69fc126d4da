"""Pairs, pruning and the checklist (RFC 8445 §6.1.2, §6.1.4, §8.1.2), and the
transition tables swept pair by pair (h2's test_state_machines, for ICE)."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.ice.candidate import Candidate, CandidateType, TransportProtocol
from peerline.ice.checklist import (
    CandidatePair,
    Checklist,
    LocalCandidate,
    can_pair,
    pair_priority,
)
from peerline.ice.errors import InvalidTransition
from peerline.ice.states import (
    CHECKLIST_TRANSITIONS,
    PAIR_TRANSITIONS,
    ChecklistInput,
    ChecklistState,
    PairInput,
    PairState,
    next_checklist_state,
    next_pair_state,
)
from peerline.stun import TransportAddress

HOST = Candidate.host(("10.0.0.1", 5000))
HOST_LOCAL = LocalCandidate(HOST, HOST.address)
SRFLX = Candidate.server_reflexive(
    ("203.0.113.1", 6000), base=("10.0.0.1", 5000), server=("192.0.2.1", 3478)
)
SRFLX_LOCAL = LocalCandidate(SRFLX, HOST.address)


def remote(ip: str, port: int, kind: CandidateType = CandidateType.HOST, component: int = 1):
    priority = {CandidateType.HOST: 2130706431, CandidateType.SERVER_REFLEXIVE: 1694498815}
    return Candidate(
        foundation=f"r{kind.value}",
        component=component,
        priority=priority.get(kind, 16777215) - (component - 1),
        address=TransportAddress(ip, port),
        type=kind,
    )


# -- pair priority (§6.1.2.3) ----------------------------------------------------


def test_pair_priority_worked_numbers() -> None:
    """G = 2130706431 (host, controlling), D = 1694498815 (srflx, controlled):
    2^32·1694498815 + 2·2130706431 + 1 = 7277816993535754240 + 4261412862 + 1."""
    assert pair_priority(2130706431, 1694498815) == 7277816997797167103
    # the same candidates with the roles swapped lose only the tie-break bit
    assert pair_priority(1694498815, 2130706431) == 7277816997797167102
    # host (G) with relay (D): 2^32·16777215 + 2·2130706431 + 1
    assert pair_priority(2130706431, 16777215) == 72057594004373503


def test_both_agents_compute_the_same_pair_priority() -> None:
    """The controlling agent's G is the controlled agent's remote priority."""
    ours, theirs = HOST, remote("198.51.100.1", 7000, CandidateType.SERVER_REFLEXIVE)
    as_controlling = CandidatePair(ours, ours.address, theirs, controlling=True)
    as_controlled = CandidatePair(theirs, theirs.address, ours, controlling=False)
    assert as_controlling.priority == as_controlled.priority == 7277816997797167103


# -- pairing rules (§6.1.2.2) ----------------------------------------------------


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (remote("198.51.100.1", 7000), True),
        (remote("198.51.100.1", 7000, component=2), False),  # other component
        (remote("2001:db8::1", 7000), False),  # other family
        (remote("169.254.1.1", 7000), False),  # link-local with a global address
    ],
)
def test_pairing_needs_same_component_and_family(other: Candidate, expected: bool) -> None:
    assert can_pair(HOST, other) is expected


def test_unusable_remote_candidates_are_not_paired() -> None:
    tcp = Candidate.from_sdp("candidate:1 1 TCP 2130706431 198.51.100.1 9 typ host tcptype active")
    mdns = Candidate.from_sdp("candidate:1 1 UDP 2130706431 abcd-1234.local 9 typ host")
    assert not can_pair(HOST, tcp)
    assert not can_pair(HOST, mdns)


def test_ipv6_link_local_pairs_only_with_link_local() -> None:
    local = Candidate.host(("fe80::1", 5000))
    assert can_pair(local, remote("fe80::2", 7000))
    assert not can_pair(local, remote("2001:db8::2", 7000))


# -- pruning (§6.1.2.4) and initial states (§6.1.2.6) ----------------------------


def test_server_reflexive_pairs_collapse_onto_their_base() -> None:
    """A srflx local candidate is replaced by its base, which makes its pairs
    redundant with the host candidate's: 2 pairs, not 4, all from the host."""
    checklist = Checklist([1], controlling=True)
    remotes = [remote("198.51.100.1", 7000), remote("198.51.100.2", 7000)]
    added = checklist.add_pairs([HOST_LOCAL, SRFLX_LOCAL], remotes)
    assert len(added) == len(checklist.pairs) == 2
    assert {p.local for p in checklist.pairs} == {HOST}
    # adding the same candidates again adds nothing
    assert checklist.add_pairs([HOST_LOCAL, SRFLX_LOCAL], remotes) == []


def test_server_reflexive_without_its_host_candidate_is_kept_and_sends_from_its_base() -> None:
    checklist = Checklist([1], controlling=True)
    (pair,) = checklist.add_pairs([SRFLX_LOCAL], [remote("198.51.100.1", 7000)])
    assert pair.local == SRFLX
    assert pair.base == HOST.address


def test_pairs_are_ordered_by_priority_and_one_per_foundation_starts_waiting() -> None:
    checklist = Checklist([1, 2], controlling=True)
    host2 = Candidate.host(("10.0.0.1", 5001), component=2)
    remotes = [
        remote("198.51.100.1", 7000),
        remote("198.51.100.1", 7001, component=2),
        remote("203.0.113.9", 7000, CandidateType.SERVER_REFLEXIVE),
    ]
    checklist.add_pairs([HOST_LOCAL, LocalCandidate(host2, host2.address)], remotes)
    priorities = [p.priority for p in checklist.pairs]
    assert priorities == sorted(priorities, reverse=True)
    states = {(p.component, p.remote.type): p.state for p in checklist.pairs}
    assert states == {
        (1, CandidateType.HOST): PairState.WAITING,
        (2, CandidateType.HOST): PairState.FROZEN,  # same foundation as component 1's
        (1, CandidateType.SERVER_REFLEXIVE): PairState.WAITING,
    }


def test_max_pairs_drops_the_lowest_priorities() -> None:
    """§6.1.2.5: the list is capped; what goes is the bottom."""
    checklist = Checklist([1], controlling=True, max_pairs=3)
    remotes = [remote(f"198.51.100.{i}", 7000) for i in range(1, 6)]
    relay = Candidate.relayed(
        ("192.0.2.1", 9000), mapped=("203.0.113.1", 1), server=("192.0.2.1", 3478)
    )
    checklist.add_pairs([HOST_LOCAL, LocalCandidate(relay, relay.address)], remotes)
    assert len(checklist.pairs) == 3
    assert all(p.local == HOST for p in checklist.pairs)


# -- choosing checks (§6.1.4.2, §7.2.5.3.3, §7.3.1.4) ----------------------------


def test_triggered_checks_go_first_then_waiting_then_unfrozen_by_foundation() -> None:
    checklist = Checklist([1], controlling=True)
    same_foundation = [remote(f"198.51.100.{i}", 7000) for i in (1, 2)]
    first, second = checklist.add_pairs([HOST_LOCAL], same_foundation)
    assert (first.state, second.state) == (PairState.WAITING, PairState.FROZEN)
    triggered = checklist.add_triggered_pair(HOST_LOCAL, remote("198.51.100.9", 1))
    checklist.trigger(triggered)
    assert checklist.next_check() is triggered
    assert checklist.next_check() is first
    assert first.state is PairState.IN_PROGRESS
    # the second pair's foundation is in progress: it stays frozen
    assert checklist.next_check() is None
    first.apply(PairInput.SUCCESS)
    checklist.unfreeze_foundation(first.foundation)
    assert second.state is PairState.WAITING
    assert checklist.next_check() is second


def test_frozen_pair_is_unfrozen_once_its_foundation_is_idle() -> None:
    checklist = Checklist([1], controlling=True)
    first, second = checklist.add_pairs(
        [HOST_LOCAL], [remote("198.51.100.1", 7000), remote("198.51.100.2", 7000)]
    )
    assert checklist.next_check() is first
    first.apply(PairInput.FAILURE)
    assert checklist.has_work()
    assert checklist.next_check() is second


def test_nomination_drops_waiting_pairs_and_names_lower_in_progress_ones() -> None:
    """§8.1.2: once a pair is nominated, Frozen and Waiting pairs of the component
    go, and lower-priority checks in flight stop retransmitting."""
    checklist = Checklist([1], controlling=True)
    remotes = [
        remote("198.51.100.1", 7000),
        remote("203.0.113.9", 7000, CandidateType.SERVER_REFLEXIVE),
        remote("192.0.2.50", 7000, CandidateType.RELAYED),
    ]
    best, middle, worst = checklist.add_pairs([HOST_LOCAL], remotes)
    assert checklist.next_check() is best
    assert checklist.next_check() is middle
    middle.apply(PairInput.SUCCESS)
    valid = checklist.add_valid(middle)
    assert checklist.nominate(valid) == []  # best is higher: it keeps going
    assert worst not in checklist.pairs
    assert checklist.selected(1) is middle
    assert checklist.all_nominated()


def test_exhausted_only_when_nothing_is_left_and_a_component_has_no_valid_pair() -> None:
    checklist = Checklist([1], controlling=True)
    assert checklist.exhausted()  # no pair at all
    (pair,) = checklist.add_pairs([HOST_LOCAL], [remote("198.51.100.1", 7000)])
    assert not checklist.exhausted()
    assert checklist.next_check() is pair
    assert not checklist.exhausted()
    pair.apply(PairInput.FAILURE)
    assert checklist.exhausted()
    assert checklist.apply(ChecklistInput.EXHAUSTED) is ChecklistState.FAILED
    assert checklist.next_check() is None


def test_the_limit_trims_failed_pairs_before_unchecked_ones() -> None:
    checklist = Checklist([1], controlling=True, max_pairs=2)
    first, second = checklist.add_pairs(
        [HOST_LOCAL], [remote("198.51.100.1", 7000), remote("198.51.100.2", 7000)]
    )
    assert checklist.next_check() is first
    first.apply(PairInput.FAILURE)
    (third,) = checklist.add_pairs(
        [HOST_LOCAL], [remote("192.0.2.50", 7000, CandidateType.RELAYED)]
    )
    assert checklist.pairs == [second, third]  # the failed one went, not the lowest


def test_an_extension_raises_the_limit_and_its_pairs_start_waiting() -> None:
    checklist = Checklist([1], controlling=True, max_pairs=2)
    remotes = [remote(f"198.51.100.{i}", 7000) for i in range(1, 6)]
    assert len(checklist.add_pairs([HOST_LOCAL], remotes)) == 2
    more = [remote(f"203.0.113.{i}", 7000) for i in range(1, 6)]
    added = checklist.add_pairs([HOST_LOCAL], more, max_pairs=10, waiting=True)
    assert len(added) == 5
    assert all(p.state is PairState.WAITING for p in added)  # one foundation, none frozen
    assert checklist.max_pairs == 10
    checklist.add_pairs([HOST_LOCAL], [remote("192.0.2.9", 1)], max_pairs=3)
    assert checklist.max_pairs == 10  # never lowered


def test_a_full_list_takes_a_triggered_pair_only_in_place_of_a_worse_one() -> None:
    checklist = Checklist([1], controlling=True, max_pairs=2)
    best, worst = checklist.add_pairs(
        [HOST_LOCAL],
        [remote("198.51.100.1", 7000), remote("192.0.2.50", 7000, CandidateType.RELAYED)],
    )
    srflx_remote = remote("203.0.113.9", 7000, CandidateType.SERVER_REFLEXIVE)
    triggered = checklist.add_triggered_pair(HOST_LOCAL, srflx_remote)
    assert triggered is not None
    assert worst not in checklist.pairs
    assert len(checklist.pairs) == 2
    relay_remote = remote("192.0.2.51", 7000, CandidateType.RELAYED)
    assert checklist.add_triggered_pair(HOST_LOCAL, relay_remote) is None
    assert checklist.pairs == [best, triggered]
    assert checklist.learning_limit == 1


def test_a_signalled_candidate_replaces_a_learned_one_in_its_pairs() -> None:
    checklist = Checklist([1], controlling=True)
    learned = remote("198.51.100.1", 7000, CandidateType.PEER_REFLEXIVE)
    pair = checklist.add_triggered_pair(HOST_LOCAL, learned)
    assert pair is not None
    before = pair.priority
    signalled = remote("198.51.100.1", 7000)
    checklist.replace_remote(learned, signalled)
    assert pair.remote is signalled
    assert pair.priority == CandidatePair(HOST, HOST.address, signalled, controlling=True).priority
    assert pair.priority != before


def test_exclusive_nomination_keeps_only_the_latest() -> None:
    checklist = Checklist([1], controlling=False)
    first, second = checklist.add_pairs(
        [HOST_LOCAL],
        [remote("198.51.100.1", 7000), remote("203.0.113.9", 7000, CandidateType.SERVER_REFLEXIVE)],
    )
    for pair in (first, second):
        assert pair.state is PairState.WAITING  # two foundations
        pair.apply(PairInput.START)
        pair.apply(PairInput.SUCCESS)
        checklist.add_valid(pair)
    checklist.nominate(first)
    checklist.nominate(second)
    assert checklist.selected(1) is first  # the best of several (aggressive peer)
    checklist.nominate(second, exclusive=True)
    assert checklist.selected(1) is second  # the latest (RFC 8445 peer)
    assert not first.nominated


def test_nomination_keeps_pairs_the_peer_nominated() -> None:
    checklist = Checklist([1], controlling=False)
    best, worst = checklist.add_pairs(
        [HOST_LOCAL],
        [remote("198.51.100.1", 7000), remote("192.0.2.50", 7000, CandidateType.RELAYED)],
    )
    best.nominate_on_success = True  # USE-CANDIDATE came before our check succeeded
    assert best.state is PairState.WAITING
    worst.apply(PairInput.START)
    worst.apply(PairInput.SUCCESS)
    worst.valid_pair = checklist.add_valid(worst)  # as the agent notes it
    checklist.nominate(worst)
    assert best in checklist.pairs
    assert checklist.source_of(worst) is worst


def test_a_failed_pair_counts_its_revivals() -> None:
    checklist = Checklist([1], controlling=True)
    (pair,) = checklist.add_pairs([HOST_LOCAL], [remote("198.51.100.1", 7000)])
    for n in range(1, 4):
        assert checklist.next_check() is pair
        pair.apply(PairInput.FAILURE)
        checklist.trigger(pair)
        assert pair.revivals == n
    assert pair.state is PairState.WAITING


def test_role_switch_recomputes_priorities_and_reorders() -> None:
    checklist = Checklist([1], controlling=True)
    relay = Candidate.relayed(
        ("192.0.2.1", 9000), mapped=("203.0.113.1", 1), server=("192.0.2.1", 3478)
    )
    checklist.add_pairs(
        [HOST_LOCAL, LocalCandidate(relay, relay.address)],
        [remote("198.51.100.1", 7000), remote("192.0.2.50", 7000, CandidateType.RELAYED)],
    )
    before = {(p.local.type, p.remote.type): p.priority for p in checklist.pairs}
    checklist.set_role(controlling=False)
    after = {(p.local.type, p.remote.type): p.priority for p in checklist.pairs}
    # host-relay and relay-host swap which one wins the tie-break bit
    assert after[CandidateType.HOST, CandidateType.RELAYED] == (
        before[CandidateType.HOST, CandidateType.RELAYED] - 1
    )
    assert after[CandidateType.RELAYED, CandidateType.HOST] == (
        before[CandidateType.RELAYED, CandidateType.HOST] + 1
    )
    priorities = [p.priority for p in checklist.pairs]
    assert priorities == sorted(priorities, reverse=True)


# -- the transition tables, every pair ---------------------------------------------


@pytest.mark.parametrize(("state", "event"), list(itertools.product(PairState, PairInput)))
def test_every_pair_state_and_input(state: PairState, event: PairInput) -> None:
    """A listed pair moves where the table says; any other raises InvalidTransition."""
    if (state, event) in PAIR_TRANSITIONS:
        assert next_pair_state(state, event) is PAIR_TRANSITIONS[state, event]
    else:
        with pytest.raises(InvalidTransition) as caught:
            next_pair_state(state, event)
        assert (caught.value.state, caught.value.event) == (state, event)


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(ChecklistState, ChecklistInput))
)
def test_every_checklist_state_and_input(state: ChecklistState, event: ChecklistInput) -> None:
    if (state, event) in CHECKLIST_TRANSITIONS:
        assert next_checklist_state(state, event) is CHECKLIST_TRANSITIONS[state, event]
    else:
        with pytest.raises(InvalidTransition):
            next_checklist_state(state, event)


def test_pair_table_facts() -> None:
    """The rules the table encodes, stated once more in RFC words."""
    # nothing is checked while frozen, and a failed pair only comes back when triggered
    assert (PairState.FROZEN, PairInput.START) not in PAIR_TRANSITIONS
    assert {e for (s, e) in PAIR_TRANSITIONS if s is PairState.FAILED} == {
        PairInput.TRIGGER,
        PairInput.SUCCESS,
    }
    # every state can be reached from FROZEN
    reached, frontier = {PairState.FROZEN}, [PairState.FROZEN]
    while frontier:
        state = frontier.pop()
        for (s, _), target in PAIR_TRANSITIONS.items():
            if s is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(PairState)
    # a failed checklist is final
    assert not [k for k in CHECKLIST_TRANSITIONS if k[0] is ChecklistState.FAILED]


@given(st.lists(st.sampled_from(PairInput), max_size=30))
def test_any_input_sequence_follows_the_table_or_raises(events: list[PairInput]) -> None:
    pair = CandidatePair(HOST, HOST.address, remote("198.51.100.1", 7000), controlling=True)
    for event in events:
        expected = PAIR_TRANSITIONS.get((pair.state, event))
        if expected is None:
            with pytest.raises(InvalidTransition):
                pair.apply(event)
        else:
            assert pair.apply(event) is expected


def test_tcp_candidates_are_parsed_but_never_paired() -> None:
    tcp_local = Candidate(
        foundation="t",
        component=1,
        transport=TransportProtocol.TCP,
        priority=1,
        address=TransportAddress("10.0.0.1", 9),
        type=CandidateType.HOST,
    )
    checklist = Checklist([1], controlling=True)
    assert (
        checklist.add_pairs(
            [LocalCandidate(tcp_local, tcp_local.address)], [remote("198.51.100.1", 1)]
        )
        == []
    )
