"""SIP transactions driven by a fake clock (RFC 3261 §17, RFC 6026).

Every (state, input) pair of every machine is swept: a pair in the table does
what the table says, any other pair raises TransactionError. Then each timer is
checked for its exact value over UDP and over TCP.
"""

import contextlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.sip import Method, Request, Response, TransactionError, parse_message
from peerline.sip.matching import cancel_target_key, client_key, new_branch, server_key
from peerline.sip.message import build_ack, build_cancel
from peerline.sip.transaction import (
    INPUT_TIMER,
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    AckReceived,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ResponseReceived,
    State,
    Terminated,
    TimedOut,
    Timer,
    TimerConfig,
    Transaction,
    TransportFailed,
    client_transaction,
    server_transaction,
    timer_duration,
)

T1, T2, T4 = 0.5, 4.0, 5.0


def make_request(method: str = "INVITE", branch: str = "z9hG4bK776asdhds") -> Request:
    text = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def answer(request: Request, status: int) -> Response:
    return Response.for_request(request, status, to_tag="a6c85cf")


def events(tx: Transaction) -> list[object]:
    out: list[object] = []
    while (event := tx.next_event()) is not None:
        out.append(event)
    return out


# -- every (state, input) pair ------------------------------------------------

Maker = Callable[[bool], Transaction]


def ict(reliable: bool) -> Transaction:
    return InviteClientTransaction(make_request(), reliable=reliable, now=0.0)


def nict(reliable: bool) -> Transaction:
    return NonInviteClientTransaction(make_request("OPTIONS"), reliable=reliable, now=0.0)


def ist(reliable: bool) -> Transaction:
    return InviteServerTransaction(make_request(), reliable=reliable, now=0.0)


def nist(reliable: bool) -> Transaction:
    return NonInviteServerTransaction(make_request("OPTIONS"), reliable=reliable, now=0.0)


def drive_to(tx: Transaction, state: State) -> None:
    """Reach `state` through the public API only."""
    request = tx.request
    if state is tx.state:
        return
    if state is State.TERMINATED:
        tx.transport_error(1.0)
    elif isinstance(tx, InviteClientTransaction | NonInviteClientTransaction):
        status = {State.PROCEEDING: 180, State.COMPLETED: 486, State.ACCEPTED: 200}[state]
        if isinstance(tx, NonInviteClientTransaction) and state is State.COMPLETED:
            status = 200
        tx.receive_response(answer(request, status), 1.0)
    else:
        assert isinstance(tx, InviteServerTransaction | NonInviteServerTransaction)
        if state is State.PROCEEDING:
            tx.send_response(answer(request, 180), 1.0)
        elif state is State.ACCEPTED:
            tx.send_response(answer(request, 200), 1.0)
        else:
            tx.send_response(answer(request, 486), 1.0)
            if state is State.CONFIRMED:
                tx.receive_request(build_ack(request, answer(request, 486)), 1.0)
    assert tx.state is state


def message_for(tx: Transaction, event: Input) -> Request | Response | None:
    request = tx.request
    if event is Input.PROVISIONAL:
        return answer(request, 180)
    if event is Input.SUCCESS:
        return answer(request, 200)
    if event is Input.FAILURE:
        return answer(request, 486)
    if event is Input.REQUEST:
        return request
    if event is Input.ACK:
        return build_ack(request, answer(request, 486))
    return None


MACHINES: list[tuple[str, Maker, dict[tuple[State, Input], object]]] = [
    ("invite client", ict, dict(INVITE_CLIENT)),
    ("non-invite client", nict, dict(NON_INVITE_CLIENT)),
    ("invite server", ist, dict(INVITE_SERVER)),
    ("non-invite server", nist, dict(NON_INVITE_SERVER)),
]
REACHABLE = {
    "invite client": [State.CALLING, State.PROCEEDING, State.COMPLETED, State.ACCEPTED],
    "non-invite client": [State.TRYING, State.PROCEEDING, State.COMPLETED],
    "invite server": [State.PROCEEDING, State.COMPLETED, State.CONFIRMED, State.ACCEPTED],
    "non-invite server": [State.TRYING, State.PROCEEDING, State.COMPLETED],
}
SWEEP = [
    (name, make, table, state, event, reliable)
    for name, make, table in MACHINES
    for state in [*REACHABLE[name], State.TERMINATED]
    for event in Input
    for reliable in (False, True)
]


@pytest.mark.parametrize(
    ("name", "make", "table", "state", "event", "reliable"),
    SWEEP,
    ids=[f"{n}-{s.value}-{e.value}-{'tcp' if r else 'udp'}" for n, _, _, s, e, r in SWEEP],
)
def test_every_state_input_pair(
    name: str,
    make: Maker,
    table: dict[tuple[State, Input], object],
    state: State,
    event: Input,
    reliable: bool,
) -> None:
    tx = make(reliable)
    drive_to(tx, state)
    events(tx)
    transition = table.get((state, event))
    timer = INPUT_TIMER.get(event)
    if timer is not None and timer_duration(timer, tx.config, reliable=reliable) is None:
        transition = None  # that timer never runs on this transport
    if transition is None:
        with pytest.raises(TransactionError):
            tx.process(event, 2.0, message_for(tx, event))
        return
    tx.process(event, 2.0, message_for(tx, event))
    assert tx.state is transition.target  # type: ignore[attr-defined]
    if tx.state is State.TERMINATED:
        assert isinstance(events(tx)[-1], Terminated)
        assert tx.get_timer() is None


def test_every_table_state_is_reachable() -> None:
    for name, _, table in MACHINES:
        assert {state for state, _ in table} == set(REACHABLE[name])


@given(
    machine=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    inputs=st.lists(st.sampled_from(list(Input)), max_size=12),
)
def test_random_input_sequences_only_ever_raise_transaction_error(
    machine: tuple[str, Maker, object], reliable: bool, inputs: list[Input]
) -> None:
    tx = machine[1](reliable)
    now = 0.0
    for event in inputs:
        now += 0.25
        with contextlib.suppress(TransactionError):
            tx.process(event, now, message_for(tx, event))
        tx.messages_to_send()
        events(tx)


# -- timers with a fake clock -------------------------------------------------


def run_until(tx: Transaction, end: float) -> list[float]:
    """Fire timers until `end`; the times at which something was sent."""
    sent: list[float] = []
    while (deadline := tx.get_timer()) is not None and deadline <= end:
        tx.handle_timer(deadline)
        if tx.messages_to_send():
            sent.append(deadline)
    return sent


def test_invite_client_over_udp_retransmits_on_timer_a_until_timer_b() -> None:
    tx = InviteClientTransaction(make_request(), reliable=False, now=0.0)
    assert tx.messages_to_send() == [tx.request]
    assert tx.timers == {Timer.A: T1, Timer.B: 64 * T1}
    assert run_until(tx, 100) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.state is State.TERMINATED
    assert events(tx) == [TimedOut(timer=Timer.B), Terminated()]


def test_invite_client_over_tcp_never_retransmits() -> None:
    tx = InviteClientTransaction(make_request(), reliable=True, now=10.0)
    assert tx.messages_to_send() == [tx.request]
    assert tx.timers == {Timer.B: 10.0 + 64 * T1}
    assert run_until(tx, 100) == []
    assert events(tx) == [TimedOut(timer=Timer.B), Terminated()]


def test_provisional_stops_invite_retransmissions() -> None:
    tx = InviteClientTransaction(make_request(), reliable=False, now=0.0)
    tx.messages_to_send()
    ringing = answer(tx.request, 180)
    tx.receive_response(ringing, 0.2)
    assert tx.state is State.PROCEEDING
    assert tx.get_timer() is None
    assert events(tx) == [ResponseReceived(response=ringing)]


@pytest.mark.parametrize(("reliable", "timer_d"), [(False, 32.0), (True, 0.0)])
def test_invite_client_failure_sends_ack_and_waits_timer_d(reliable: bool, timer_d: float) -> None:
    tx = InviteClientTransaction(make_request(), reliable=reliable, now=0.0)
    tx.messages_to_send()
    busy = answer(tx.request, 486)
    tx.receive_response(busy, 1.0)
    (ack,) = tx.messages_to_send()
    assert isinstance(ack, Request)
    assert ack.method is Method.ACK
    assert ack.to.tag == "a6c85cf"
    assert ack.top_via.branch == tx.request.top_via.branch
    assert (ack.cseq.number, ack.cseq.method) == (314159, Method.ACK)
    assert tx.timers == {Timer.D: 1.0 + timer_d}
    tx.receive_response(busy, 2.0)  # a retransmitted final response: ACK again
    assert tx.messages_to_send() == [ack]
    tx.handle_timer(1.0 + timer_d)
    assert tx.state is State.TERMINATED


def test_invite_client_accepted_passes_every_2xx_until_timer_m() -> None:
    tx = InviteClientTransaction(make_request(), reliable=False, now=0.0)
    ok = answer(tx.request, 200)
    tx.receive_response(ok, 1.0)
    tx.receive_response(ok, 2.0)
    assert tx.state is State.ACCEPTED
    assert tx.timers == {Timer.M: 1.0 + 64 * T1}
    tx.handle_timer(1.0 + 64 * T1)
    assert events(tx) == [ResponseReceived(response=ok)] * 2 + [Terminated()]


def test_non_invite_client_over_udp_backs_off_to_t2() -> None:
    tx = NonInviteClientTransaction(make_request("OPTIONS"), reliable=False, now=0.0)
    tx.messages_to_send()
    assert tx.timers == {Timer.E: T1, Timer.F: 64 * T1}
    sent = run_until(tx, 100)
    assert sent[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(b - a == T2 for a, b in itertools.pairwise(sent[3:]))
    assert events(tx) == [TimedOut(timer=Timer.F), Terminated()]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    tx = NonInviteClientTransaction(make_request("OPTIONS"), reliable=False, now=0.0)
    tx.receive_response(answer(tx.request, 100), 0.1)
    assert tx.timers == {Timer.E: T1, Timer.F: 64 * T1}  # E and F keep running
    assert run_until(tx, 9) == [0.5, 4.5, 8.5]


@pytest.mark.parametrize(("reliable", "timer_k"), [(False, T4), (True, 0.0)])
def test_non_invite_client_completed_waits_timer_k(reliable: bool, timer_k: float) -> None:
    tx = NonInviteClientTransaction(make_request("OPTIONS"), reliable=reliable, now=0.0)
    tx.receive_response(answer(tx.request, 200), 1.0)
    assert tx.timers == {Timer.K: 1.0 + timer_k}
    tx.receive_response(answer(tx.request, 200), 1.0)  # absorbed
    tx.handle_timer(1.0 + timer_k)
    assert tx.state is State.TERMINATED


def test_non_invite_client_over_tcp_only_has_timer_f() -> None:
    tx = NonInviteClientTransaction(make_request("OPTIONS"), reliable=True, now=0.0)
    assert tx.timers == {Timer.F: 64 * T1}


def test_invite_server_sends_trying_and_absorbs_retransmissions() -> None:
    request = make_request()
    tx = InviteServerTransaction(request, reliable=False, now=0.0)
    (trying,) = tx.messages_to_send()
    assert isinstance(trying, Response)
    assert trying.status == 100
    tx.receive_request(request, 0.3)
    assert tx.messages_to_send() == [trying]
    assert tx.get_timer() is None


def test_invite_server_failure_over_udp_retransmits_on_g_until_h() -> None:
    request = make_request()
    tx = InviteServerTransaction(request, reliable=False, now=0.0, send_trying=False)
    tx.send_response(answer(request, 486), 0.0)
    tx.messages_to_send()
    assert tx.timers == {Timer.G: T1, Timer.H: 64 * T1}
    sent = run_until(tx, 100)
    assert sent[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert sent[-1] < 64 * T1
    assert events(tx) == [TimedOut(timer=Timer.H), Terminated()]


@pytest.mark.parametrize(("reliable", "timer_i"), [(False, T4), (True, 0.0)])
def test_invite_server_ack_confirms_then_timer_i(reliable: bool, timer_i: float) -> None:
    request = make_request()
    tx = InviteServerTransaction(request, reliable=reliable, now=0.0, send_trying=False)
    busy = answer(request, 486)
    tx.send_response(busy, 0.0)
    expected = {Timer.H: 64 * T1} if reliable else {Timer.G: T1, Timer.H: 64 * T1}
    assert tx.timers == expected
    tx.receive_request(build_ack(request, busy), 0.2)
    assert tx.state is State.CONFIRMED
    assert tx.timers == {Timer.I: 0.2 + timer_i}
    tx.handle_timer(0.2 + timer_i)
    assert tx.state is State.TERMINATED


def test_invite_server_accepted_passes_acks_and_lets_tu_resend_2xx() -> None:
    request = make_request()
    tx = InviteServerTransaction(request, reliable=False, now=0.0)
    tx.messages_to_send()
    ok = answer(request, 200)
    tx.send_response(ok, 1.0)
    assert tx.timers == {Timer.L: 1.0 + 64 * T1}
    tx.receive_request(request, 1.5)  # INVITE retransmission: absorbed
    assert tx.messages_to_send() == [ok]
    tx.send_response(ok, 2.0)
    assert tx.messages_to_send() == [ok]
    ack = build_ack(request, ok)
    tx.receive_request(ack, 2.5)
    assert events(tx) == [AckReceived(request=ack)]
    with pytest.raises(TransactionError):
        tx.send_response(answer(request, 486), 3.0)


@pytest.mark.parametrize(("reliable", "timer_j"), [(False, 64 * T1), (True, 0.0)])
def test_non_invite_server_completed_waits_timer_j(reliable: bool, timer_j: float) -> None:
    request = make_request("REGISTER")
    tx = NonInviteServerTransaction(request, reliable=reliable, now=0.0)
    assert tx.get_timer() is None
    tx.receive_request(request, 0.1)
    assert tx.messages_to_send() == []  # nothing to resend yet
    ok = answer(request, 200)
    tx.send_response(ok, 1.0)
    assert tx.messages_to_send() == [ok]
    assert tx.timers == {Timer.J: 1.0 + timer_j}
    tx.receive_request(request, 1.1)
    assert tx.messages_to_send() == [ok]
    with pytest.raises(TransactionError):
        tx.send_response(ok, 1.2)  # a second final response
    tx.handle_timer(1.0 + timer_j)
    assert events(tx) == [Terminated()]


def test_transport_error_is_reported() -> None:
    tx = client_transaction(make_request("BYE"), reliable=True, now=0.0)
    tx.transport_error(0.1)
    assert events(tx) == [TransportFailed(), Terminated()]
    with pytest.raises(TransactionError):
        tx.receive_response(answer(tx.request, 200), 0.2)


def test_factories_pick_the_machine_and_refuse_ack() -> None:
    assert isinstance(
        client_transaction(make_request(), reliable=False, now=0), InviteClientTransaction
    )
    assert isinstance(
        server_transaction(make_request("MESSAGE"), reliable=False, now=0),
        NonInviteServerTransaction,
    )
    ack = build_ack(make_request(), answer(make_request(), 404))
    with pytest.raises(TransactionError):
        client_transaction(ack, reliable=False, now=0)
    with pytest.raises(TransactionError):
        server_transaction(ack, reliable=False, now=0)


def test_timer_config_is_validated_and_scales_every_timer() -> None:
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)
    fast = TimerConfig(t1=0.1, t2=1.0, t4=2.0, timer_d=10.0)
    assert timer_duration(Timer.B, fast, reliable=True) == pytest.approx(6.4)
    assert timer_duration(Timer.D, fast, reliable=False) == 10.0
    assert timer_duration(Timer.K, fast, reliable=False) == 2.0
    assert timer_duration(Timer.A, fast, reliable=True) is None


# -- matching ------------------------------------------------------------------


def test_server_key_matches_retransmissions_acks_but_not_cancel() -> None:
    invite = make_request()
    ack = build_ack(invite, answer(invite, 486))
    cancel = build_cancel(invite)
    assert server_key(invite) == server_key(ack)
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)
    other = make_request(branch="z9hG4bKother")
    assert server_key(other) != server_key(invite)


def test_client_key_pairs_a_response_with_its_request() -> None:
    invite = make_request()
    assert client_key(answer(invite, 180)) == client_key(invite)
    assert client_key(build_cancel(invite)) != client_key(invite)


def test_rfc2543_requests_fall_back_to_the_old_key() -> None:
    invite = make_request(branch="z9hG4bK")  # RFC 4475 §3.2.1: cookie, no id
    key = server_key(invite)
    assert key.branch == ""
    assert key.legacy
    ack = build_ack(invite, answer(invite, 486))
    assert server_key(ack) == key
    assert cancel_target_key(build_cancel(invite)) == key


def test_new_branches_carry_the_cookie_and_differ() -> None:
    first, second = new_branch(), new_branch()
    assert first.startswith("z9hG4bK")
    assert first != second
