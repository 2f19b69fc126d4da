"""The seam for negotiated extensions (the birthday technique, later): ice-options
both sides advertised, unsignalled extra local candidates, guessed remote
candidates, and a checklist limit the extension may raise per call."""

from __future__ import annotations

import random

import pytest

from peerline.ice.candidate import Candidate, CandidateType
from peerline.ice.config import IceConfig
from peerline.ice.errors import IceUsageError
from peerline.ice.events import Completed
from peerline.stun import TransportAddress
from tests.unit.ice_network import Host, Mapping, Nat, Network, signal
from tests.unit.test_ice_agent import B_HOST, completed, connect, same_selection, two_hosts

TOKEN = "x-birthday"
WITH_TOKEN = IceConfig(ice_options=("trickle", "ice2", TOKEN))
B_PUBLIC = "203.0.113.2"


def guess(port: int) -> Candidate:
    """A guessed port of the peer's NAT, ranked below every real candidate (even a
    relay) so that guesses never push real pairs out of the checklist."""
    return Candidate(
        foundation="guess",
        component=1,
        priority=1000,
        address=TransportAddress(B_PUBLIC, port),
        type=CandidateType.PEER_REFLEXIVE,
    )


def birthday_hosts(net: Network) -> tuple[Host, Host]:
    """a behind a port-restricted cone, b behind a symmetric NAT: ICE alone fails."""
    return two_hosts(
        net,
        a_nat=Nat("203.0.113.1"),
        b_nat=Nat(B_PUBLIC, mapping=Mapping.ADDRESS_AND_PORT_DEPENDENT, first_port=41000),
        a_config=WITH_TOKEN,
        b_config=WITH_TOKEN,
    )


def test_options_are_negotiated_only_when_both_sides_advertise_them() -> None:
    net = Network()
    a, b = two_hosts(net, a_config=WITH_TOKEN)
    connect(net, a, b)
    assert TOKEN not in a.agent.negotiated_options
    assert TOKEN not in b.agent.negotiated_options
    assert "trickle" in a.agent.negotiated_options
    net = Network()
    a, b = birthday_hosts(net)
    connect(net, a, b)
    assert TOKEN in a.agent.negotiated_options
    assert TOKEN in b.agent.negotiated_options


def test_unsignalled_candidates_come_after_end_of_candidates_and_stay_private() -> None:
    net = Network()
    a, b = two_hosts(net)
    connect(net, a, b)
    extra = Candidate.host(("10.0.2.2", 7000), local_preference=10)
    with pytest.raises(IceUsageError):
        b.agent.add_local_candidate(extra)  # a signalled one after end-of-candidates
    assert b.agent.add_local_candidate(extra, signalled=False) == 1
    assert extra not in b.agent.local_candidates
    with pytest.raises(IceUsageError):
        a.agent.add_remote_candidate(guess(41000))
    assert a.agent.add_remote_candidate(guess(41000), signalled=False) == 1
    assert guess(41000) in a.agent.remote_candidates
    b.agent.restart()
    assert extra not in b.agent.local_candidates  # nor in the next generation
    signal(a, b)  # so that the next generation has pairs to look at
    assert b.agent.pairs()
    assert all(p.local.address != extra.address for p in b.agent.pairs())


def test_guesses_beyond_max_pairs_are_trimmed_unless_the_call_raises_the_limit() -> None:
    net = Network()
    a, b = birthday_hosts(net)
    connect(net, a, b)
    before = len(a.agent.pairs())
    kept = [a.agent.add_remote_candidate(guess(42000 + n), signalled=False) for n in range(150)]
    assert len(a.agent.pairs()) == a.agent.config.max_pairs == 100
    assert sum(kept) == 100 - before
    assert kept[-1] == 0  # the call says its pair was not kept
    # the real pairs stay: guesses rank below them
    assert all(p.remote.foundation != "guess" for p in a.agent.pairs()[:before])
    raised = [
        a.agent.add_remote_candidate(guess(43000 + n), signalled=False, max_pairs=400)
        for n in range(250)
    ]
    assert sum(raised) == 250
    assert len(a.agent.pairs()) <= 400
    # the limit stays raised for this generation: an ordinary call trims nothing
    a.agent.add_remote_candidate(guess(44000), signalled=False)
    assert len(a.agent.pairs()) == 351
    with pytest.raises(IceUsageError):
        a.agent.add_remote_candidate(guess(44001), signalled=False, max_pairs=0)


def test_fifty_extra_ports_and_guessed_ports_get_through_a_symmetric_nat() -> None:
    """The shape of the birthday technique over the seam: b opens 50 more ports
    toward a, a probes 300 guessed ports of b's NAT; one pair meets."""
    net = Network()
    a, b = birthday_hosts(net)
    connect(net, a, b)
    for n in range(50):
        extra = TransportAddress(B_HOST.ip, 7000 + n)
        b.addresses.append(extra)
        b.agent.add_local_candidate(
            Candidate.host(extra, local_preference=1000 - n), signalled=False, max_pairs=200
        )
    rng = random.Random(7)
    for port in rng.sample(range(41000, 41500), 300):
        a.agent.add_remote_candidate(guess(port), signalled=False, max_pairs=400)
    assert len(a.agent.pairs()) > 300
    assert net.run_until(lambda: completed(a, b), 120.0)
    _, destination = same_selection(a, b)
    assert destination.ip == B_PUBLIC
    selected_a = a.agent.selected_pair()
    assert selected_a is not None
    assert selected_a.remote.foundation == "guess"  # one of the guessed ports met
    assert a.agent.selected_types() == (
        CandidateType.SERVER_REFLEXIVE,
        CandidateType.PEER_REFLEXIVE,
    )
    assert b.agent.selected_types() == (
        CandidateType.PEER_REFLEXIVE,
        CandidateType.SERVER_REFLEXIVE,
    )
    assert b.of_type(Completed)


def test_without_the_extension_the_same_nats_fail() -> None:
    """The control for the test above: plain ICE cannot cross this pair of NATs."""
    net = Network()
    a, b = birthday_hosts(net)
    connect(net, a, b)
    net.run_for(60.0)
    assert not completed(a, b)
    assert a.agent.selected_pair() is None
