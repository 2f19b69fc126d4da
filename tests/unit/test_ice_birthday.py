"""The birthday technique's sans-IO parts: the probe planner with a fake clock (its
bounds in count and time, its pace, which answers it believes), the odds, the
configuration, who does what (`plan_birthday`), and the mapping in descriptions."""

from __future__ import annotations

import itertools

import pytest

from peerline.ice.birthday import (
    BIRTHDAY_OPTION,
    PORT_SPACE,
    BirthdayConfig,
    BirthdayPlan,
    BirthdayRole,
    Mapping,
    ProbePlanner,
    combine_mappings,
    judge_mapping,
    plan_birthday,
    success_probability,
)
from peerline.ice.candidate import Candidate
from peerline.ice.description import IceDescription, parse_description
from peerline.ice.sdp import Credentials
from peerline.stun import (
    MessageBuilder,
    MessageClass,
    Method,
    TransportAddress,
    binding_success,
    new_transaction_id,
    short_term_key,
)

KEY = short_term_key("a-peer-password-of-22-chars")
BASE = TransportAddress("10.0.1.2", 5000)
PEER_IP = "203.0.113.20"


def request() -> bytes:
    """A stand-in for a signed check: only its transaction ID matters here."""
    return MessageBuilder(Method.BINDING, MessageClass.REQUEST, new_transaction_id()).encode(
        integrity_key=KEY, fingerprint=True
    )


def targets(count: int) -> list[tuple[TransportAddress, TransportAddress]]:
    return [(BASE, TransportAddress(PEER_IP, 2000 + n)) for n in range(count)]


def planner(count: int, *, rate: float = 100.0, deadline: float = 100.0) -> ProbePlanner:
    return ProbePlanner(
        targets(count), make_check=request, key=KEY, rate=rate, now=0.0, deadline=deadline
    )


def drive(probes: ProbePlanner, until: float) -> list[tuple[float, int]]:
    """Wake the planner at each of its timers until `until` (a bounded loop); return
    (time, datagrams sent then)."""
    sent = [(0.0, len(probes.datagrams_to_send(0.0)))]
    for _ in range(100_000):
        when = probes.get_timer()
        if when is None or when > until:
            break
        probes.handle_timer(when)
        sent.append((when, len(probes.datagrams_to_send(when))))
    return sent


# -- the planner ---------------------------------------------------------------------------


def test_each_target_once_and_no_more() -> None:
    probes = planner(300, rate=1000.0)
    seen = []
    now = 0.0
    for _ in range(10_000):
        seen += probes.datagrams_to_send(now)
        when = probes.get_timer()
        if when is None:
            break
        now = when
    assert [(t.base, t.destination) for t in seen] == targets(300)
    assert len({t.data[8:20] for t in seen}) == 300  # a fresh transaction each
    assert probes.done
    assert probes.sent == 300
    assert probes.get_timer() is None
    assert probes.datagrams_to_send(now + 10) == []
    assert now == pytest.approx(0.299, abs=0.02)  # 300 at 1000/s


def test_paced_at_the_rate_in_small_batches() -> None:
    probes = planner(1000, rate=500.0)  # batches of 10, 50 wake-ups a second
    history = drive(probes, until=1.0)
    total = 0
    for when, count in history:
        total += count
        assert total <= when * 500 + 1  # never ahead of the rate
        assert count <= 11
    assert total >= 490  # and not behind it either
    assert len(history) <= 55


def test_nothing_after_the_deadline() -> None:
    probes = planner(2000, rate=500.0, deadline=1.5)
    drive(probes, until=10.0)
    assert probes.done
    assert 740 <= probes.sent <= 751  # 1.5 s at 500/s: the count bound was not reached
    assert probes.get_timer() is None
    assert probes.datagrams_to_send(1.6) == []


def test_a_late_wake_up_catches_up_but_never_passes_the_targets() -> None:
    probes = planner(50, rate=100.0)
    assert len(probes.datagrams_to_send(0.0)) == 1
    assert len(probes.datagrams_to_send(0.2)) == 20  # the loop was late: catch up
    assert len(probes.datagrams_to_send(30.0)) == 29
    assert probes.done


def test_stop_ends_it() -> None:
    probes = planner(100)
    probes.datagrams_to_send(0.0)
    probes.stop()
    assert probes.get_timer() is None
    assert probes.datagrams_to_send(1.0) == []


def test_only_signed_success_answers_from_the_probed_address_count() -> None:
    probes = planner(5)
    (first,) = probes.datagrams_to_send(0.0)
    tid = first.data[8:20]
    good = binding_success(tid, ("198.51.100.1", 4000), integrity_key=KEY, fingerprint=True)
    unsigned = binding_success(tid, ("198.51.100.1", 4000), fingerprint=True)
    wrong_key = binding_success(
        tid, ("198.51.100.1", 4000), integrity_key=short_term_key("x" * 22), fingerprint=True
    )
    stranger = binding_success(
        new_transaction_id(), ("198.51.100.1", 4000), integrity_key=KEY, fingerprint=True
    )
    error = MessageBuilder(Method.BINDING, MessageClass.ERROR, tid).add_error_code(400)
    elsewhere = TransportAddress(PEER_IP, 9)
    assert not probes.receive(unsigned, BASE, first.destination, 0.1)
    assert not probes.receive(wrong_key, BASE, first.destination, 0.1)
    assert not probes.receive(stranger, BASE, first.destination, 0.1)
    assert not probes.receive(error.encode(integrity_key=KEY), BASE, first.destination, 0.1)
    assert not probes.receive(good, BASE, elsewhere, 0.1)  # not where the probe went
    assert not probes.receive(b"\x17\x03garbage" * 3, BASE, first.destination, 0.1)
    assert probes.hits == []
    assert probes.receive(good, BASE, first.destination, 0.2)
    assert [(h.destination, h.at) for h in probes.hits] == [(first.destination, 0.2)]
    assert not probes.receive(good, BASE, first.destination, 0.3)  # once


# -- odds and configuration ----------------------------------------------------------------


def test_the_odds_follow_the_formula() -> None:
    assert success_probability(256, 2000) == pytest.approx(1 - (1 - 256 / 64512) ** 2000)
    assert success_probability(256, 2000) > 0.999
    assert success_probability(256, 1000) == pytest.approx(0.981, abs=0.001)
    assert success_probability(1, 1) == pytest.approx(1 / PORT_SPACE)
    assert success_probability(PORT_SPACE, 1) == 1.0
    assert BirthdayConfig().probability == success_probability(256, 2000)
    # a budget shorter than the probes need cuts the odds
    assert BirthdayConfig(budget=1.0).probability == success_probability(256, 500)


@pytest.mark.parametrize(
    "options",
    [
        {"ports": 0},
        {"ports": 5000},
        {"probes": 0},
        {"probes": PORT_SPACE + 1},
        {"rate": 0.0},
        {"rate": 1e6},
        {"budget": 0.0},
        {"budget": 1000.0},
    ],
)
def test_bad_bounds_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="birthday"):
        BirthdayConfig(**options)  # type: ignore[arg-type]


# -- mappings --------------------------------------------------------------------------


def test_mapping_verdicts() -> None:
    base = TransportAddress("10.0.0.2", 4000)
    one, two = TransportAddress("192.0.2.1", 3478), TransportAddress("192.0.2.2", 3479)
    same_ip_other_port = TransportAddress("192.0.2.1", 3479)
    public = TransportAddress("198.51.100.7", 4000)
    other_port = TransportAddress("198.51.100.7", 50123)
    assert judge_mapping(base, {}) is Mapping.UNKNOWN
    assert judge_mapping(base, {one: public}) is Mapping.UNKNOWN
    assert judge_mapping(base, {one: public, two: public}) is Mapping.INDEPENDENT
    assert judge_mapping(base, {one: public, two: other_port}) is Mapping.DEPENDENT
    # two ports of one IP: an address-dependent NAT would look the same
    assert judge_mapping(base, {one: public, same_ip_other_port: public}) is Mapping.UNKNOWN
    assert judge_mapping(base, {one: public, same_ip_other_port: other_port}) is Mapping.DEPENDENT
    assert judge_mapping(base, {one: base}) is Mapping.INDEPENDENT  # no NAT at all
    assert combine_mappings([]) is Mapping.UNKNOWN
    assert combine_mappings([Mapping.UNKNOWN, Mapping.INDEPENDENT]) is Mapping.INDEPENDENT
    assert combine_mappings([Mapping.INDEPENDENT, Mapping.DEPENDENT]) is Mapping.DEPENDENT


def test_the_mapping_travels_in_the_description_and_unknown_values_read_as_unknown() -> None:
    credentials = Credentials("8hhY", "asd88fgpdd777uzjYhagZg")
    for mapping in Mapping:
        description = IceDescription(
            credentials=credentials, options=("trickle", BIRTHDAY_OPTION), mapping=mapping
        )
        text = description.to_text()
        assert f"a=x-peerline-mapping:{mapping.value}\n" in text
        assert parse_description(text) == description
    plain = IceDescription(credentials=credentials)
    assert "x-peerline" not in plain.to_text()
    assert parse_description(plain.to_text()).mapping is None
    later = parse_description(
        "a=ice-ufrag:8hhY\na=ice-pwd:asd88fgpdd777uzjYhagZg\na=x-peerline-mapping:sideways\n"
    )
    assert later.mapping is Mapping.UNKNOWN


# -- who does what ---------------------------------------------------------------------


S_HOST = ("10.0.2.2", 6000)
P_HOST = ("10.0.1.2", 5000)
S_SRFLX = Candidate.server_reflexive(
    ("203.0.113.20", 40001), base=S_HOST, server=("203.0.113.1", 3478)
)
P_SRFLX = Candidate.server_reflexive(
    ("203.0.113.10", 5000), base=P_HOST, server=("203.0.113.1", 3478)
)
S_SIDE = [Candidate.host(S_HOST), S_SRFLX]
P_SIDE = [Candidate.host(P_HOST), P_SRFLX]


def plan(
    local: Mapping,
    remote: Mapping,
    mine: list[Candidate] = S_SIDE,
    theirs: list[Candidate] = P_SIDE,
    *,
    negotiated: bool = True,
) -> BirthdayPlan | None:
    return plan_birthday(
        negotiated=negotiated,
        local=local,
        remote=remote,
        local_candidates=mine,
        remote_candidates=theirs,
    )


def test_the_symmetric_side_opens_and_the_cone_side_probes() -> None:
    opener = plan(Mapping.DEPENDENT, Mapping.INDEPENDENT)
    prober = plan(Mapping.INDEPENDENT, Mapping.DEPENDENT, P_SIDE, S_SIDE)
    assert opener is not None
    assert prober is not None
    assert (opener.role, opener.base, opener.target) == (
        BirthdayRole.OPENER,
        S_HOST,
        P_SRFLX.address,
    )
    assert opener.peer_ip == "203.0.113.10"
    assert (prober.role, prober.base, prober.peer_ip) == (
        BirthdayRole.PROBER,
        P_HOST,
        "203.0.113.20",
    )


@pytest.mark.parametrize(
    ("negotiated", "local", "remote"),
    [
        (False, Mapping.DEPENDENT, Mapping.INDEPENDENT),  # a standard peer
        *(
            (True, local, remote)
            for local, remote in itertools.product(Mapping, Mapping)
            if {local, remote} != {Mapping.DEPENDENT, Mapping.INDEPENDENT}
        ),
    ],
)
def test_no_plan_otherwise(negotiated: bool, local: Mapping, remote: Mapping) -> None:
    """Two symmetric NATs (both dependent), two cones, anything unknown, a peer
    without the token: ICE as usual."""
    assert plan(local, remote, negotiated=negotiated) is None


def test_no_plan_without_a_reflexive_address_on_each_side() -> None:
    assert plan(Mapping.DEPENDENT, Mapping.INDEPENDENT, S_SIDE[:1], P_SIDE) is None
    assert plan(Mapping.DEPENDENT, Mapping.INDEPENDENT, S_SIDE, P_SIDE[:1]) is None
