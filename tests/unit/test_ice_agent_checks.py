"""The ICE agent's checks in detail: trickle (RFC 8838), failure only after both
sides' end-of-candidates, answers to bad checks (RFC 8489 §6.3, §9.1.3), pacing
and retransmission timers (RFC 8445 §14)."""

from __future__ import annotations

import pytest

from peerline.ice.agent import Agent, Disposition
from peerline.ice.candidate import Candidate
from peerline.ice.config import IceConfig, Role
from peerline.ice.events import Completed, Failed
from peerline.ice.sdp import Credentials
from peerline.ice.states import ChecklistState
from peerline.stun import (
    AttributeType,
    ErrorCode,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportAddress,
    parse,
    short_term_key,
    verify_fingerprint,
    verify_message_integrity,
)
from tests.unit.ice_network import Host, Network, signal
from tests.unit.test_ice_agent import (
    A_HOST,
    A_HOST2,
    B_HOST,
    completed,
    same_selection,
    two_hosts,
)

# -- trickle (RFC 8838) ---------------------------------------------------------------


def blocked_and_trickling(*, end: bool = False) -> tuple[Network, Host, Host]:
    """Two agents whose only pair cannot work, each having signalled its
    candidates (and end-of-candidates only when `end`)."""
    net = Network()
    a, b = two_hosts(net)
    net.taps.append(lambda p: {p.source, p.destination} != {A_HOST, B_HOST})
    for host, other in ((a, b), (b, a)):
        net.gather(host, end=end)
        signal(host, other, end=end)
    return net, a, b


def test_a_candidate_trickled_after_checks_began_pairs_and_succeeds() -> None:
    net, a, b = blocked_and_trickling()
    net.run_for(2.0)
    assert not completed(a, b)
    assert not a.of_type(Failed)
    a.addresses.append(A_HOST2)
    a.agent.add_local_candidate(Candidate.host(A_HOST2, local_preference=100))
    signal(a, b, end=False)  # only the new candidate is new to b
    assert net.run_until(lambda: completed(a, b), 5.0)
    assert same_selection(a, b) == (A_HOST2, B_HOST)


def test_failed_only_after_both_sides_end_of_candidates_with_the_reason() -> None:
    net, a, b = blocked_and_trickling()
    net.run_for(60.0)  # every check has long timed out
    assert a.agent.checklist_state is ChecklistState.RUNNING
    a.agent.end_of_local_candidates()
    net.run_for(1.0)
    assert not a.of_type(Failed)  # b may still trickle
    a.agent.end_of_remote_candidates()
    net.run_for(1.0)
    failed = a.of_type(Failed)
    assert len(failed) == 1
    assert "component" in failed[0].reason
    assert "[1]" in failed[0].reason
    assert a.agent.checklist_state is ChecklistState.FAILED
    assert not b.of_type(Failed)  # b heard of no end-of-candidates
    assert a.agent.get_timer() is None  # a failed agent sleeps


def test_failure_is_reported_after_the_last_check_times_out() -> None:
    """With both ends signalled up front, Failed comes when the checks give up:
    not before the transaction timeout of the last check, RFC 8489 §6.2.1."""
    net, a, _ = blocked_and_trickling(end=True)
    assert net.run_until(lambda: bool(a.of_type(Failed)), 120.0)
    config = IceConfig()
    timeout = config.check_rto * (2 ** (config.check_rc - 1) - 1 + config.check_rm)
    assert a.time_of(Failed) >= timeout
    assert not a.of_type(Completed)


# -- answers to bad checks ----------------------------------------------------------------

B_CREDS = Credentials("bbbb", "b" * 22)
A_CREDS = Credentials("aaaa", "a" * 22)
PEER = TransportAddress("10.0.1.2", 5000)


def answering_agent() -> Agent:
    agent = Agent(role=Role.CONTROLLED, credentials=B_CREDS, tie_breaker=1)
    agent.add_local_candidate(Candidate.host(B_HOST))
    agent.set_remote_credentials(A_CREDS.ufrag, A_CREDS.pwd)
    return agent


def answer_to(agent: Agent, request: bytes) -> Message:
    assert agent.receive_datagram(request, B_HOST, PEER, 0.0) is Disposition.CONSUMED
    sent = [t for t in agent.datagrams_to_send(0.0) if t.destination == PEER]
    answers = [
        parse(t.data) for t in sent if parse(t.data).message_class is not MessageClass.REQUEST
    ]
    assert len(answers) == 1
    assert answers[0].transaction_id == parse(request).transaction_id
    assert verify_fingerprint(answers[0])
    return answers[0]


def check(
    *,
    username: str = "bbbb:aaaa",
    password: str = B_CREDS.pwd,
    extra: tuple[int, bytes] | None = None,
    both_roles: bool = False,
    with_integrity: bool = True,
) -> bytes:
    builder = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
    if username:
        builder.add_text(AttributeType.USERNAME, username)
    builder.add_u32(AttributeType.PRIORITY, 1862270975)
    builder.add_u64(AttributeType.ICE_CONTROLLING, 99)
    if both_roles:
        builder.add_u64(AttributeType.ICE_CONTROLLED, 98)
    if extra is not None:
        builder.add(*extra)
    key = short_term_key(password) if with_integrity else None
    return builder.encode(integrity_key=key, fingerprint=True)


def code_of(answer: Message) -> int:
    assert answer.message_class is MessageClass.ERROR
    assert answer.error_code is not None
    return answer.error_code.code


def test_a_good_check_is_answered_with_a_signed_success() -> None:
    answer = answer_to(answering_agent(), check())
    assert answer.message_class is MessageClass.SUCCESS
    assert answer.xor_mapped_address == PEER
    assert verify_message_integrity(answer, short_term_key(B_CREDS.pwd))


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        pytest.param(check(username="zzzz:aaaa"), ErrorCode.UNAUTHENTICATED, id="wrong-ufrag"),
        pytest.param(check(username="bbbb:zzzz"), ErrorCode.UNAUTHENTICATED, id="wrong-peer"),
        pytest.param(check(username="bbbb"), ErrorCode.UNAUTHENTICATED, id="no-colon"),
        pytest.param(check(password="x" * 22), ErrorCode.UNAUTHENTICATED, id="wrong-password"),
        pytest.param(check(username=""), ErrorCode.BAD_REQUEST, id="no-username"),
        pytest.param(check(with_integrity=False), ErrorCode.BAD_REQUEST, id="no-integrity"),
    ],
)
def test_unauthenticated_checks_get_unsigned_errors(request_bytes: bytes, code: int) -> None:
    agent = answering_agent()
    answer = answer_to(agent, request_bytes)
    assert code_of(answer) == code
    assert AttributeType.MESSAGE_INTEGRITY not in answer
    assert agent.remote_candidates == []  # nothing learned from a stranger


def test_unknown_comprehension_required_attribute_gets_a_signed_420() -> None:
    answer = answer_to(answering_agent(), check(extra=(0x7F00, b"\x00" * 4)))
    assert code_of(answer) == ErrorCode.UNKNOWN_ATTRIBUTE
    assert answer.unknown_attributes == [0x7F00]
    assert verify_message_integrity(answer, short_term_key(B_CREDS.pwd))


def test_an_unknown_comprehension_optional_attribute_is_ignored() -> None:
    answer = answer_to(answering_agent(), check(extra=(0xC0FE, b"\x00" * 4)))
    assert answer.message_class is MessageClass.SUCCESS


def test_both_role_attributes_get_a_signed_400() -> None:
    answer = answer_to(answering_agent(), check(both_roles=True))
    assert code_of(answer) == ErrorCode.BAD_REQUEST
    assert verify_message_integrity(answer, short_term_key(B_CREDS.pwd))


def test_a_role_conflict_answer_is_signed() -> None:
    agent = Agent(role=Role.CONTROLLING, credentials=B_CREDS, tie_breaker=1000)
    agent.add_local_candidate(Candidate.host(B_HOST))
    agent.set_remote_credentials(A_CREDS.ufrag, A_CREDS.pwd)
    answer = answer_to(agent, check())  # ICE-CONTROLLING 99 < 1000: we keep control
    assert code_of(answer) == ErrorCode.ROLE_CONFLICT
    assert verify_message_integrity(answer, short_term_key(B_CREDS.pwd))
    assert agent.role is Role.CONTROLLING


def test_a_check_before_the_offer_arrived_is_answered() -> None:
    """RFC 8445 §7.3: a check may beat the signalling; our credentials suffice to
    answer it, and the peer's address is remembered as peer-reflexive."""
    agent = Agent(role=Role.CONTROLLED, credentials=B_CREDS, tie_breaker=1)
    agent.add_local_candidate(Candidate.host(B_HOST))
    answer = answer_to(agent, check())
    assert answer.message_class is MessageClass.SUCCESS
    assert [c.address for c in agent.remote_candidates] == [PEER]


def test_a_check_at_an_address_that_is_no_candidate_of_ours_is_not_answered() -> None:
    """A socket the agent was never given (an extra birthday socket it did not admit):
    a success from there would hand the peer a pair we cannot use, and a controlling
    peer would nominate it; the check goes unanswered and nothing is learned."""
    agent = answering_agent()
    elsewhere = TransportAddress(B_HOST.ip, B_HOST.port + 1)
    assert agent.receive_datagram(check(), elsewhere, PEER, 0.0) is Disposition.CONSUMED
    assert agent.datagrams_to_send(0.0) == []
    assert agent.pairs() == []


def test_a_controlled_agent_with_no_room_for_the_pair_does_not_answer() -> None:
    """The checklist is full: a controlled agent could not follow a nomination of the
    pair, so it leaves the check unanswered rather than let the peer count on it."""
    agent = Agent(
        role=Role.CONTROLLED, config=IceConfig(max_pairs=1), credentials=B_CREDS, tie_breaker=1
    )
    agent.add_local_candidate(Candidate.host(B_HOST))
    agent.set_remote_credentials(A_CREDS.ufrag, A_CREDS.pwd)
    agent.add_remote_candidate(Candidate.host(("10.9.0.1", 7000)))
    assert len(agent.pairs()) == 1
    assert agent.receive_datagram(check(), B_HOST, PEER, 0.0) is Disposition.CONSUMED
    assert [t for t in agent.datagrams_to_send(0.0) if t.destination == PEER] == []


def test_a_bad_answer_to_our_check_is_ignored() -> None:
    """An answer signed with another key is as if it never came (RFC 8445 §7.2.5)."""
    agent = Agent(role=Role.CONTROLLING, credentials=A_CREDS, tie_breaker=5)
    agent.add_local_candidate(Candidate.host(A_HOST))
    agent.set_remote_credentials(B_CREDS.ufrag, B_CREDS.pwd)
    agent.add_remote_candidate(Candidate.host(B_HOST))
    agent.handle_timer(0.0)
    (sent,) = agent.datagrams_to_send(0.0)
    request = parse(sent.data)
    forged = MessageBuilder.response_to(request).add_xor_address(
        AttributeType.XOR_MAPPED_ADDRESS, A_HOST
    )
    data = forged.encode(integrity_key=short_term_key("f" * 22), fingerprint=True)
    assert agent.receive_datagram(data, A_HOST, B_HOST, 0.01) is Disposition.CONSUMED
    assert agent.next_event() is None
    assert agent.selected_pair() is None


# -- pacing and retransmissions (RFC 8445 §14) ------------------------------------------


def lonely_agent(remotes: int, config: IceConfig | None = None) -> Agent:
    """An agent whose checks go nowhere: `remotes` candidates of distinct foundations."""
    agent = Agent(role=Role.CONTROLLING, config=config, credentials=A_CREDS, tie_breaker=5)
    agent.add_local_candidate(Candidate.host(A_HOST))
    agent.set_remote_credentials(B_CREDS.ufrag, B_CREDS.pwd)
    for n in range(remotes):
        agent.add_remote_candidate(Candidate.host((f"10.9.{n}.1", 7000)))
    return agent


def drive(agent: Agent, until: float) -> list[tuple[float, bytes, TransportAddress]]:
    """Wake the agent at each `get_timer()`; return (time, transaction id, destination)."""
    now, sent = 0.0, []
    for _ in range(10_000):
        timer = agent.get_timer()
        if timer is None or timer > until:
            break
        now = max(now, timer)
        agent.handle_timer(now)
        sent += [
            (now, parse(t.data).transaction_id, t.destination) for t in agent.datagrams_to_send(now)
        ]
    return sent


def test_new_checks_are_paced_one_per_ta() -> None:
    agent = lonely_agent(5)
    sent = drive(agent, 0.3)
    firsts: dict[bytes, float] = {}
    for when, tid, _ in sent:
        firsts.setdefault(tid, when)
    assert sorted(firsts.values()) == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])
    assert len({d for _, _, d in sent}) == 5


def test_a_check_is_retransmitted_after_its_rto() -> None:
    """Five pairs: RTO = max(500 ms, 5 · Ta) = 500 ms, then doubling."""
    sent = drive(lonely_agent(5), 2.0)
    first_tid = sent[0][1]
    times = [when for when, tid, _ in sent if tid == first_tid]
    assert times == pytest.approx([0.0, 0.5, 1.5])


def test_rto_grows_with_the_pairs_in_flight() -> None:
    """Twenty pairs: RTO = max(500 ms, 20 · Ta) = 1 s (RFC 8445 §14.3)."""
    sent = drive(lonely_agent(20), 3.5)
    first_tid = sent[0][1]
    times = [when for when, tid, _ in sent if tid == first_tid]
    assert times == pytest.approx([0.0, 1.0, 3.0])


def test_get_timer_names_the_next_pace() -> None:
    agent = lonely_agent(3)
    assert agent.get_timer() == 0.0
    agent.handle_timer(0.0)
    assert len(agent.datagrams_to_send(0.0)) == 1
    assert agent.get_timer() == pytest.approx(0.05)
    agent.handle_timer(0.02)  # early: nothing new
    assert agent.datagrams_to_send(0.02) == []
    assert agent.get_timer() == pytest.approx(0.05)


def test_no_checks_before_the_peer_credentials() -> None:
    agent = Agent(role=Role.CONTROLLING, tie_breaker=5)
    agent.add_local_candidate(Candidate.host(A_HOST))
    assert agent.get_timer() is None
    agent.add_remote_candidate(Candidate.host(B_HOST))
    assert agent.get_timer() is None
    agent.set_remote_credentials(B_CREDS.ufrag, B_CREDS.pwd)
    assert agent.get_timer() == 0.0


def test_checks_carry_what_rfc_8445_asks() -> None:
    """USERNAME peer:ours, PRIORITY of a prflx candidate, our role and tie-breaker,
    signed with the peer's password, with FINGERPRINT (§7.1)."""
    sent = drive(lonely_agent(1), 0.0)
    agent = lonely_agent(1)
    agent.handle_timer(0.0)
    (transmit,) = agent.datagrams_to_send(0.0)
    request = parse(transmit.data)
    assert request.username == f"{B_CREDS.ufrag}:{A_CREDS.ufrag}"
    assert request.priority == (110 << 24) | (Candidate.host(A_HOST).priority & 0xFFFFFF)
    assert request.ice_controlling == 5
    assert verify_message_integrity(request, short_term_key(B_CREDS.pwd))
    assert verify_fingerprint(request)
    assert sent
