"""Every pair of NAT behaviours (RFC 4787 mapping × filtering) on both sides, as
the sans-IO network models them: ICE connects directly exactly where hole
punching can work, falls back to a relay elsewhere, fails (after end-of-candidates)
without one, and keeps its checklist within the limit whatever the NATs do."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.ice.candidate import CandidateType
from peerline.ice.config import Role
from peerline.ice.events import Completed, ConsentLost, Failed
from peerline.ice.states import ChecklistState
from tests.unit.ice_network import Filtering, Mapping, Nat, Network
from tests.unit.test_ice_agent import (
    AGGRESSIVE,
    completed,
    connect,
    same_selection,
    two_hosts,
)
from tests.unit.test_ice_agent_lifetime import restart

BEHAVIOURS = [(m, f) for m in Mapping for f in Filtering]
SYMMETRIC = Mapping.ADDRESS_AND_PORT_DEPENDENT
PORT_RESTRICTED = Filtering.ADDRESS_AND_PORT_DEPENDENT


def label(behaviour: tuple[Mapping, Filtering]) -> str:
    short = {"endpoint-independent": "ei", "address-dependent": "ad"}
    mapping, filtering = behaviour
    return f"{short.get(mapping.value, 'apd')}m-{short.get(filtering.value, 'apd')}f"


def punchable(a: tuple[Mapping, Filtering], b: tuple[Mapping, Filtering]) -> bool:
    """A direct path exists unless both map per destination, or one maps per
    destination and the other filters by address and port."""
    if a[0] is SYMMETRIC and b[0] is SYMMETRIC:
        return False
    return not (a[0] is SYMMETRIC and b[1] is PORT_RESTRICTED) and not (
        b[0] is SYMMETRIC and a[1] is PORT_RESTRICTED
    )


CASES = [
    pytest.param(a, b, id=f"{label(a)}-x-{label(b)}")
    for a, b in itertools.product(BEHAVIOURS, BEHAVIOURS)
]


def nats(a: tuple[Mapping, Filtering], b: tuple[Mapping, Filtering]) -> tuple[Nat, Nat]:
    return (
        Nat("203.0.113.1", mapping=a[0], filtering=a[1]),
        Nat("203.0.113.2", mapping=b[0], filtering=b[1], first_port=41000),
    )


@pytest.mark.parametrize(("a_nat", "b_nat"), CASES)
def test_direct_where_punchable_else_failed(
    a_nat: tuple[Mapping, Filtering], b_nat: tuple[Mapping, Filtering]
) -> None:
    net = Network()
    first, second = nats(a_nat, b_nat)
    a, b = two_hosts(net, a_nat=first, b_nat=second)
    connect(net, a, b)
    done = net.run_until(
        lambda: completed(a, b) or bool(a.of_type(Failed) and b.of_type(Failed)), 120.0
    )
    assert done
    for host in (a, b):
        assert len(host.agent.pairs()) <= host.agent.config.max_pairs
        assert len(host.agent.remote_candidates) <= host.agent.config.max_pairs + 2
    if punchable(a_nat, b_nat):
        assert completed(a, b)
        same_selection(a, b)
        types = a.agent.selected_types()
        assert types is not None
        assert CandidateType.HOST not in types  # through both NATs
    else:
        assert a.agent.checklist_state is ChecklistState.FAILED
        assert b.agent.checklist_state is ChecklistState.FAILED
        assert a.agent.selected_pair() is None


@pytest.mark.parametrize(("a_nat", "b_nat"), CASES)
def test_with_a_relay_everything_connects_and_direct_is_preferred(
    a_nat: tuple[Mapping, Filtering], b_nat: tuple[Mapping, Filtering]
) -> None:
    net = Network()
    first, second = nats(a_nat, b_nat)
    a, b = two_hosts(net, a_nat=first, b_nat=second)
    connect(net, a, b, relay=True)
    assert net.run_until(lambda: completed(a, b), 60.0)
    same_selection(a, b)
    selected = a.agent.selected_pair()
    assert selected is not None
    assert selected.relayed is not punchable(a_nat, b_nat)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    a_nat=st.sampled_from(BEHAVIOURS),
    b_nat=st.sampled_from(BEHAVIOURS),
    loss=st.sampled_from([0.0, 0.05, 0.15]),
    delay=st.sampled_from([0.005, 0.05, 0.2]),
    roles=st.sampled_from(
        [
            (Role.CONTROLLING, Role.CONTROLLED),
            (Role.CONTROLLING, Role.CONTROLLING),
            (Role.CONTROLLED, Role.CONTROLLED),
        ]
    ),
    aggressive=st.booleans(),
    relay=st.booleans(),
    ties=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    seed=st.integers(0, 2**16),
    restart_by_a=st.booleans(),
)
def test_any_scenario_ends_with_one_shared_path_or_a_failure_on_both_sides(
    a_nat: tuple[Mapping, Filtering],
    b_nat: tuple[Mapping, Filtering],
    loss: float,
    delay: float,
    roles: tuple[Role, Role],
    aggressive: bool,
    relay: bool,
    ties: tuple[int, int],
    seed: int,
    restart_by_a: bool,
) -> None:
    """NATs, loss, delay, role conflicts, either nomination, a relay or not, then a
    restart: the agents never loop, agree on one path with one controlling side,
    keep consent while the path works, and fail together where nothing can work."""
    net = Network(delay=delay, loss=loss, seed=seed)
    first, second = nats(a_nat, b_nat)
    a, b = two_hosts(
        net,
        a_nat=first,
        b_nat=second,
        a_role=roles[0],
        b_role=roles[1],
        a_tie=ties[0],
        b_tie=ties[1],
        a_config=AGGRESSIVE if aggressive else None,
    )
    connect(net, a, b, relay=relay)
    assert net.run_until(
        lambda: completed(a, b) or bool(a.of_type(Failed) and b.of_type(Failed)), 200.0
    )
    if not (relay or punchable(a_nat, b_nat)):
        assert not completed(a, b)
        return
    assert completed(a, b)
    assert {a.agent.role, b.agent.role} == {Role.CONTROLLING, Role.CONTROLLED}
    net.run_for(40.0)
    same_selection(a, b)
    restart(net, *((a, b) if restart_by_a else (b, a)))
    assert net.run_until(
        lambda: all(any(e.generation == 1 for e in h.of_type(Completed)) for h in (a, b)), 200.0
    )
    net.run_for(40.0)
    same_selection(a, b)
    assert not a.of_type(ConsentLost)
    assert not b.of_type(ConsentLost)
