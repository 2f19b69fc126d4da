"""The birthday technique between two agents on the sans-IO network of
`tests.unit.ice_network`, with a fake clock: P behind a port-restricted cone, S
behind a symmetric NAT, a relay for both. `BirthdayRun` rides beside each agent
as a sidecar, as it does beside the agent in `IceTransport`.

Direct when a probe meets an open port (ICE alone never gets there: the control
in test_ice_agent_seam), the relay only after the budget otherwise, whoever
controls."""

from __future__ import annotations

import random

import pytest

from peerline.ice.birthday import (
    BIRTHDAY_OPTION,
    MAX_ADMITTED,
    BirthdayConfig,
    BirthdayOutcome,
    BirthdayRole,
    BirthdayRun,
    Mapping,
    plan_birthday,
)
from peerline.ice.candidate import CandidateType
from peerline.ice.config import IceConfig, Role
from peerline.ice.events import SelectedPairChanged
from peerline.stun import TransportAddress
from tests.unit.ice_network import Filtering, Host, Nat, Network, signal
from tests.unit.ice_network import Mapping as NatMapping
from tests.unit.test_ice_agent import completed, same_selection, two_hosts

WITH_TOKEN = IceConfig(ice_options=("trickle", "ice2", BIRTHDAY_OPTION))
S_PUBLIC = "203.0.113.2"


def facing_symmetric(
    net: Network,
    other: Nat,
    *,
    other_controls: bool = True,
    token: tuple[bool, bool] = (True, True),
    signal_to_other: bool = True,
) -> tuple[Host, Host]:
    """(P, S): P behind `other`, S behind a symmetric NAT, both with a relay and
    gathered; `token` says who advertises the technique; S's description reaches
    P only with `signal_to_other`."""
    p, s = two_hosts(
        net,
        a_nat=other,
        b_nat=Nat(S_PUBLIC, mapping=NatMapping.ADDRESS_AND_PORT_DEPENDENT, first_port=41000),
        a_role=Role.CONTROLLING if other_controls else Role.CONTROLLED,
        b_role=Role.CONTROLLED if other_controls else Role.CONTROLLING,
        a_config=WITH_TOKEN if token[0] else None,
        b_config=WITH_TOKEN if token[1] else None,
    )
    net.gather(p, relay=True)
    net.gather(s, relay=True)
    signal(p, s)
    if signal_to_other:
        signal(s, p)
    return p, s


def symmetric_and_cone(
    net: Network, *, cone_controls: bool, signal_to_p: bool = True
) -> tuple[Host, Host]:
    """(P, S): P behind a port-restricted cone, S behind a symmetric NAT."""
    cone = Nat("203.0.113.1")
    return facing_symmetric(net, cone, other_controls=cone_controls, signal_to_other=signal_to_p)


def start(
    net: Network, host: Host, peer: Host, mine: Mapping, theirs: Mapping, config: BirthdayConfig
) -> BirthdayRun | None:
    """What the adapter does once both descriptions are in: plan, open the extra
    sockets (here: more addresses of the host), run beside the agent."""
    plan = plan_birthday(
        negotiated=BIRTHDAY_OPTION in host.agent.negotiated_options,
        local=mine,
        remote=theirs,
        local_candidates=host.agent.local_candidates,
        remote_candidates=host.agent.remote_candidates,
    )
    if plan is None:
        return None
    bases = []
    if plan.role is BirthdayRole.OPENER:
        bases = [TransportAddress(plan.base.ip, 7000 + n) for n in range(config.ports)]
        host.addresses.extend(bases)
    remote = peer.agent.local_credentials
    run = BirthdayRun(
        host.agent, plan, config, remote=remote, bases=bases, now=net.now, rng=random.Random(4)
    )
    host.sidecars.append(run)
    return run


def both(net: Network, p: Host, s: Host, config: BirthdayConfig) -> tuple[BirthdayRun, BirthdayRun]:
    prober = start(net, p, s, Mapping.INDEPENDENT, Mapping.DEPENDENT, config)
    opener = start(net, s, p, Mapping.DEPENDENT, Mapping.INDEPENDENT, config)
    assert prober is not None
    assert opener is not None
    assert (prober.plan.role, opener.plan.role) == (BirthdayRole.PROBER, BirthdayRole.OPENER)
    return prober, opener


def selections(host: Host) -> list[tuple[float, bool]]:
    """(when, relayed) for each pair the host selected."""
    return [
        (t, e.pair.relayed)
        for t, e in zip(host.event_times, host.events, strict=True)
        if isinstance(e, SelectedPairChanged)
    ]


@pytest.mark.parametrize("cone_controls", [True, False])
def test_a_probe_meets_an_open_port_and_the_direct_pair_wins(cone_controls: bool) -> None:
    net = Network()
    p, s = symmetric_and_cone(net, cone_controls=cone_controls)
    config = BirthdayConfig()
    prober, opener = both(net, p, s, config)
    assert net.run_until(lambda: completed(p, s), 10.0)
    _, destination = same_selection(p, s)
    assert destination.ip == S_PUBLIC
    assert p.agent.selected_types() == (
        CandidateType.SERVER_REFLEXIVE,
        CandidateType.PEER_REFLEXIVE,
    )
    assert s.agent.selected_types() == (
        CandidateType.PEER_REFLEXIVE,
        CandidateType.SERVER_REFLEXIVE,
    )
    selected_s = s.agent.selected_pair()
    assert selected_s is not None
    assert selected_s.base in opener.admitted  # one of the extra sockets carries it
    assert opener.keep == {selected_s.base}  # the others close
    for host in (p, s):
        assert [relayed for _, relayed in selections(host)] == [False]  # never the relay
    for run in (prober, opener):
        report = run.report()
        assert report.outcome is BirthdayOutcome.WON
        assert report.hit_after is not None
        assert report.direct_after is not None
        assert report.hit_after <= report.direct_after < config.budget
    assert opener.report().probes_sent <= config.ports
    assert prober.report().probes_sent < config.probes  # stopped at the hit
    assert len(opener.admitted) <= 2
    assert len(p.agent.pairs()) < 20  # the probes never entered the checklist
    # each probe went once to a distinct port of S's public address
    probes = [pk for pk in net.sent if pk.sender == "a" and pk.destination.ip == S_PUBLIC]
    assert len({pk.destination.port for pk in probes}) >= prober.report().probes_sent


@pytest.mark.parametrize("cone_controls", [True, False])
def test_when_no_probe_meets_the_relay_takes_over_after_the_budget(cone_controls: bool) -> None:
    net = Network()
    p, s = symmetric_and_cone(net, cone_controls=cone_controls)
    started = net.now
    config = BirthdayConfig(ports=2, probes=10, budget=3.0)  # odds of a hit: 0.03 %
    prober, opener = both(net, p, s, config)
    assert net.run_until(lambda: completed(p, s), 20.0)
    for host in (p, s):
        ((when, relayed),) = selections(host)
        assert relayed
        assert when >= started + config.budget  # held back while the technique ran
    for run in (prober, opener):
        assert run.report().outcome is BirthdayOutcome.GAVE_UP
        assert run.report().hit_after is None
    assert prober.report().probes_sent == 10
    assert net.run_until(lambda: False, 1.0) is False  # nothing more is sent by it
    assert prober.get_timer() is None
    assert opener.get_timer() is None


def test_without_the_technique_the_relay_is_selected_at_once() -> None:
    """The control for the hold above: the same NATs, no technique, the relay
    long before any budget."""
    net = Network()
    p, s = symmetric_and_cone(net, cone_controls=True)
    assert net.run_until(lambda: completed(p, s), 20.0)
    ((when, relayed),) = selections(p)
    assert relayed
    assert when < 2.0


def test_against_a_full_cone_it_stops_at_once_and_keeps_no_socket() -> None:
    """A full cone lets everything of S's in: ICE gets through by itself, both
    sides stop at the first datagram through, and no extra socket stays open."""
    net = Network()
    p, s = facing_symmetric(net, Nat("203.0.113.1", filtering=Filtering.ENDPOINT_INDEPENDENT))
    prober, opener = both(net, p, s, BirthdayConfig())
    assert net.run_until(lambda: completed(p, s), 10.0)
    same_selection(p, s)
    selected = s.agent.selected_pair()
    assert selected is not None
    assert not selected.relayed
    # the cone answers every opener that gets out before the first answer is back:
    # a few become candidates; whichever direct pair is nominated first (ICE's own,
    # or one through an opener), only the socket it uses stays open
    assert 1 <= len(opener.admitted) <= MAX_ADMITTED
    assert opener.report().probes_sent < 10
    assert opener.keep == opener.admitted & {selected.base}
    assert opener.report().outcome in (BirthdayOutcome.DIRECT, BirthdayOutcome.WON)
    assert prober.report().outcome is BirthdayOutcome.DIRECT
    assert prober.report().probes_sent < 10
    assert len(s.agent.pairs()) < 30


def test_the_agent_knows_when_the_peer_has_its_description() -> None:
    """`peer_checked_at`: what a late peer's run waits for."""
    net = Network()
    p, s = symmetric_and_cone(net, cone_controls=True, signal_to_p=False)
    net.run_for(2.0)
    assert p.agent.peer_checked_at is not None  # S has P's description and checks
    assert s.agent.peer_checked_at is None  # P has nothing of S's: no checks
    signal(s, p)
    assert net.run_until(lambda: s.agent.peer_checked_at is not None, 5.0)
    when = s.agent.peer_checked_at
    assert when is not None
    assert when > 2.0
    assert net.run_until(lambda: completed(p, s), 20.0)
    assert s.agent.peer_checked_at == when  # the first one, kept


def test_two_symmetric_nats_do_not_try() -> None:
    net = Network()
    a, b = facing_symmetric(net, Nat("203.0.113.1", mapping=NatMapping.ADDRESS_AND_PORT_DEPENDENT))
    config = BirthdayConfig()
    assert start(net, a, b, Mapping.DEPENDENT, Mapping.DEPENDENT, config) is None
    assert start(net, b, a, Mapping.DEPENDENT, Mapping.DEPENDENT, config) is None
    assert net.run_until(lambda: completed(a, b), 20.0)
    ((when, relayed),) = selections(a)
    assert relayed
    assert when < 2.0


def test_a_peer_without_the_token_is_left_alone() -> None:
    net = Network()
    p, s = facing_symmetric(net, Nat("203.0.113.1"), token=(True, False))
    assert BIRTHDAY_OPTION not in p.agent.negotiated_options
    assert start(net, p, s, Mapping.INDEPENDENT, Mapping.DEPENDENT, BirthdayConfig()) is None


def test_an_ice_restart_stops_it() -> None:
    net = Network()
    p, s = symmetric_and_cone(net, cone_controls=True)
    prober, opener = both(net, p, s, BirthdayConfig(ports=2, probes=2000))
    net.run_for(0.2)
    p.agent.restart()
    net.run_for(0.2)
    assert prober.report().outcome is BirthdayOutcome.STOPPED
    sent = prober.report().probes_sent
    net.run_for(1.0)
    assert prober.report().probes_sent == sent
    assert opener.report().outcome is BirthdayOutcome.RUNNING  # S was not restarted yet
