"""The ICE agent after connecting: consent freshness (RFC 7675), keepalives (RFC
8445 §11), ICE restart by either side (§9), and close()."""

from __future__ import annotations

import itertools

import pytest

from peerline.ice.agent import Disposition
from peerline.ice.candidate import Candidate
from peerline.ice.config import IceConfig
from peerline.ice.events import (
    Completed,
    ConsentLost,
    IceRestarted,
    SelectedPairChanged,
)
from peerline.stun import ErrorCode, Message, MessageClass, parse
from tests.unit.ice_network import Host, Network, Packet, signal
from tests.unit.test_ice_agent import (
    A_HOST,
    A_HOST2,
    B_HOST,
    completed,
    connect,
    same_selection,
    two_hosts,
)


def connected(
    a_config: IceConfig | None = None, b_config: IceConfig | None = None
) -> tuple[Network, Host, Host]:
    net = Network()
    a, b = two_hosts(net, a_config=a_config, b_config=b_config)
    connect(net, a, b)
    assert net.run_until(lambda: completed(a, b), 5.0)
    return net, a, b


def requests_from(net: Network, sender: str, since: float = 0.0) -> list[tuple[Packet, Message]]:
    return [
        (p, m)
        for p in net.sent
        if p.sender == sender
        and p.time >= since
        and (m := p.stun) is not None
        and m.message_class is MessageClass.REQUEST
    ]


def answered_at(net: Network, requester: str, answerer: str) -> list[float]:
    """When each request of `requester` that `answerer` answered with success was
    first sent."""
    first_sent: dict[bytes, float] = {}
    for packet, message in requests_from(net, requester):
        first_sent.setdefault(message.transaction_id, packet.time)
    return sorted(
        first_sent[m.transaction_id]
        for p in net.sent
        if p.sender == answerer
        and (m := p.stun) is not None
        and m.message_class is MessageClass.SUCCESS
        and m.transaction_id in first_sent
    )


# -- consent (RFC 7675) -------------------------------------------------------------------


def test_a_vanished_peer_loses_consent_30_s_after_the_last_answered_request() -> None:
    net, a, b = connected()
    net.run_for(12.0)  # a few consent rounds answered
    b.online = False
    vanished = net.now
    assert net.run_until(lambda: bool(a.of_type(ConsentLost)), 60.0)
    lost = a.time_of(ConsentLost)
    last_answered = answered_at(net, "a", "b")[-1]
    assert last_answered > 4.0  # a consent round, not only the checks
    assert lost >= last_answered + 30.0  # never before
    assert lost == pytest.approx(last_answered + 30.0, abs=0.01)
    assert lost > vanished
    assert a.agent.selected_pair() is None
    assert a.agent.selected_types() is None
    # a stops sending on the pair once consent is lost
    net.run_for(20.0)
    assert not [p for p in net.sent if p.sender == "a" and p.time > lost]


def test_answered_consent_keeps_the_pair_with_randomised_intervals() -> None:
    net, a, b = connected()
    selected = a.agent.selected_pair()
    start = net.now
    net.run_for(300.0)
    assert not a.of_type(ConsentLost)
    assert not b.of_type(ConsentLost)
    assert a.agent.selected_pair() == selected
    times = sorted({p.time for p, _ in requests_from(net, "a", since=start + 1.0)})
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 300 / 6 <= len(times) <= 300 / 4 + 1
    assert all(4.0 - 1e-9 <= gap <= 6.0 + 1e-9 for gap in gaps)
    assert max(gaps) - min(gaps) > 0.1  # randomised, not a fixed beat (RFC 7675 §5.1)
    # the controlled side checks consent too
    assert requests_from(net, "b", since=start + 10.0)


def test_consent_requests_lost_for_a_while_do_not_lose_the_pair() -> None:
    """Consent survives 20 s without answers: only 30 s of silence ends it."""
    net, a, _b = connected()
    start = net.now
    net.taps.append(lambda p: not (start + 5.0 <= net.now < start + 25.0))
    net.run_for(60.0)
    assert not a.of_type(ConsentLost)
    assert a.agent.selected_pair() is not None


def test_keepalives_replace_consent_when_it_is_off() -> None:
    config = IceConfig(consent_freshness=False)
    net, a, b = connected(config, config)
    start = net.now
    b.online = False  # nothing answers, nothing is lost: no consent to lose
    net.run_for(61.0)
    assert not a.of_type(ConsentLost)
    assert a.agent.selected_pair() is not None
    indications = [
        p.time
        for p in net.sent
        if p.sender == "a"
        and p.time > start
        and (m := p.stun) is not None
        and m.message_class is MessageClass.INDICATION
    ]
    assert len(indications) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(indications)]
    assert gaps == pytest.approx([15.0, 15.0, 15.0])
    assert not requests_from(net, "a", since=start + 1.0)


# -- ICE restart (RFC 8445 §9) --------------------------------------------------------------


def restart(net: Network, first: Host, second: Host) -> None:
    """`first` restarts; the new description goes over, the answer comes back."""
    first.agent.restart()
    first.agent.end_of_local_candidates()
    signal(first, second)  # new credentials: `second` restarts too
    second.agent.end_of_local_candidates()
    signal(second, first)


def ufrags_used(net: Network, sender: str, since: float) -> set[str]:
    return {
        m.username.split(":")[0]
        for p, m in requests_from(net, sender, since)
        if m.username is not None
    }


@pytest.mark.parametrize("by", ["a", "b"], ids=["by-controlling", "by-controlled"])
def test_restart_keeps_the_old_pair_until_the_new_generation_nominates(by: str) -> None:
    net, a, b = connected()
    old_a, old_b = a.agent.local_credentials.ufrag, b.agent.local_credentials.ufrag
    old_path = same_selection(a, b)
    began = net.now
    # hold back the new generation's checks for 10 s; consent on the old pair goes on
    net.taps.append(
        lambda p: (
            not (
                net.now < began + 10.0
                and (m := p.stun) is not None
                and m.message_class is MessageClass.REQUEST
                and m.username is not None
                and old_a not in m.username
            )
        )
    )
    first, second = (a, b) if by == "a" else (b, a)
    restart(net, first, second)
    net.run_for(9.0)
    assert [e.by_peer for e in first.of_type(IceRestarted)] == [False]
    assert [e.by_peer for e in second.of_type(IceRestarted)] == [True]
    assert a.agent.generation == b.agent.generation == 1
    assert a.agent.local_credentials.ufrag != old_a
    assert same_selection(a, b) == old_path  # still carrying
    assert len(a.of_type(SelectedPairChanged)) == 1
    assert ufrags_used(net, "a", since=began + 1.0) >= {old_b}  # consent on the old pair
    assert net.run_until(
        lambda: all(len(h.of_type(SelectedPairChanged)) == 2 for h in (a, b)), 10.0
    )
    switched = net.now  # both sides now select the new generation's pair
    changes = a.of_type(SelectedPairChanged) + b.of_type(SelectedPairChanged)
    assert [e.generation for e in changes] == [0, 1, 0, 1]
    assert [e.generation for e in a.of_type(Completed)] == [0, 1]
    same_selection(a, b)
    net.run_for(30.0)
    # the old generation is gone: no check or consent with its credentials
    assert ufrags_used(net, "a", since=switched + 0.1) == {b.agent.local_credentials.ufrag}
    assert ufrags_used(net, "b", since=switched + 0.1) == {a.agent.local_credentials.ufrag}
    assert not a.of_type(ConsentLost)
    assert not b.of_type(ConsentLost)


def test_restart_onto_a_new_path_moves_the_traffic() -> None:
    """After the restart only a new address works: the selection moves there."""
    net, a, b = connected()
    a.agent.restart()
    a.addresses.append(A_HOST2)
    a.agent.add_local_candidate(Candidate.host(A_HOST2, local_preference=100))
    net.taps.append(lambda p: A_HOST not in (p.source, p.destination))
    a.agent.end_of_local_candidates()
    signal(a, b)
    b.agent.end_of_local_candidates()
    signal(b, a)
    assert net.run_until(
        lambda: all(len(h.of_type(SelectedPairChanged)) == 2 for h in (a, b)), 10.0
    )
    assert same_selection(a, b) == (A_HOST2, B_HOST)


# -- close ----------------------------------------------------------------------------------


def test_close_stops_everything_and_the_peer_loses_consent() -> None:
    net, a, b = connected()
    request = next(p for p, _ in requests_from(net, "b"))
    a.agent.close()
    assert a.agent.get_timer() is None
    assert a.agent.datagrams_to_send(net.now) == []
    assert a.agent.selected_pair() is None
    assert a.agent.receive_datagram(request.data, A_HOST, B_HOST, net.now) is Disposition.NOT_ICE
    a.agent.handle_timer(net.now + 100)
    assert a.agent.datagrams_to_send(net.now + 100) == []
    closed_at = net.now
    assert net.run_until(lambda: bool(b.of_type(ConsentLost)), 40.0)
    assert b.time_of(ConsentLost) - closed_at <= 30.0
    assert not [p for p in net.sent if p.sender == "a" and p.time > closed_at]


def test_a_retired_generation_still_answers_for_a_consent_timeout() -> None:
    """The peer may not know yet that the new generation won: the old credentials
    are answered for 30 s after the switch, then refused (401)."""
    net, a, b = connected()
    old_check = next(p for p, m in requests_from(net, "a"))
    restart(net, a, b)
    assert net.run_until(
        lambda: all(len(h.of_type(SelectedPairChanged)) == 2 for h in (a, b)), 10.0
    )

    def answer() -> Message:
        b.agent.receive_datagram(old_check.data, B_HOST, A_HOST, net.now)
        (reply,) = [t for t in b.agent.datagrams_to_send(net.now) if t.destination == A_HOST]
        return parse(reply.data)

    assert answer().message_class is MessageClass.SUCCESS
    net.run_for(31.0)
    late = answer()
    assert late.message_class is MessageClass.ERROR
    assert late.error_code is not None
    assert late.error_code.code == ErrorCode.UNAUTHENTICATED
