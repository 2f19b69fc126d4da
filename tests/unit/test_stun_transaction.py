"""The client transaction (RFC 8489 §6.2.1, §6.2.2, §6.3) driven by a fake clock."""

import pytest

from peerline.stun import (
    AttributeType,
    ClientTransaction,
    Failed,
    MessageBuilder,
    MessageClass,
    Method,
    ResponseReceived,
    TimedOut,
    TransactionConfig,
    Transport,
    parse,
)


def request(tid: bytes = b"\x01" * 12) -> bytes:
    return MessageBuilder(Method.BINDING, MessageClass.REQUEST, tid).encode(fingerprint=True)


def response(tid: bytes = b"\x01" * 12, *, method: int = Method.BINDING, error: bool = False):
    klass = MessageClass.ERROR if error else MessageClass.SUCCESS
    builder = MessageBuilder(method, klass, tid)
    if error:
        builder.add_error_code(400)
    else:
        builder.add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, ("203.0.113.9", 4000))
    return builder.build()


def run_until_done(tx: ClientTransaction) -> list[float]:
    """Fire every timer exactly on time; return the times something was sent."""
    sent = [0.0] * len(tx.datagrams_to_send(0.0))
    while (deadline := tx.get_timer()) is not None:
        tx.handle_timer(deadline)
        sent += [deadline] * len(tx.datagrams_to_send(deadline))
    return sent


def test_udp_retransmissions_follow_rfc8489_6_2_1() -> None:
    """RFC 8489 §6.2.1: with RTO 500 ms, sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s,
    then the transaction fails at 39.5 s (Rm = 16 times RTO after the last)."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    assert tx.get_timer() == 0.0
    sent = run_until_done(tx)
    assert sent == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert tx.result == TimedOut(sends=7)
    assert tx.get_timer() is None
    assert tx.datagrams_to_send(100.0) == []


def test_udp_schedule_uses_the_configured_timers() -> None:
    """RFC 8489 §6.2.1: RTO, Rc and Rm are configurable."""
    config = TransactionConfig(rto=0.1, rc=3, rm=4)
    tx = ClientTransaction(request(), transport=Transport.UDP, now=10.0, config=config)
    sent = [10.0] * len(tx.datagrams_to_send(10.0))
    while (deadline := tx.get_timer()) is not None:
        tx.handle_timer(deadline)
        sent += [deadline] * len(tx.datagrams_to_send(deadline))
    assert sent == pytest.approx([10.0, 10.1, 10.3])
    assert tx.result == TimedOut(sends=3)


@pytest.mark.parametrize("transport", [Transport.TCP, Transport.TLS])
def test_reliable_transport_sends_once_and_times_out_after_ti(transport: Transport) -> None:
    """RFC 8489 §6.2.2: over TCP/TLS no retransmission; fail after Ti = 39.5 s."""
    tx = ClientTransaction(request(), transport=transport, now=5.0)
    assert tx.datagrams_to_send(5.0) == [request()]
    assert tx.get_timer() == 44.5
    tx.handle_timer(44.0)  # early: nothing happens
    assert tx.result is None
    assert tx.datagrams_to_send(44.0) == []
    tx.handle_timer(44.5)
    assert tx.result == TimedOut(sends=1)


def test_response_stops_retransmission_and_reports_rtt() -> None:
    """RFC 8489 §6.3: a matching response ends the transaction; RTT when unambiguous."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    tx.datagrams_to_send(0.0)
    reply = response()
    assert tx.handle_response(reply, 0.2)
    assert tx.result == ResponseReceived(message=reply, rtt=pytest.approx(0.2))
    assert tx.get_timer() is None
    tx.handle_timer(0.5)
    assert tx.datagrams_to_send(0.5) == []


def test_rtt_is_unknown_after_a_retransmission() -> None:
    """Karn's rule: after a retransmission the answered send is unknown."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(0.5)
    assert len(tx.datagrams_to_send(0.5)) == 1
    assert tx.handle_response(response(error=True), 0.7)
    assert isinstance(tx.result, ResponseReceived)
    assert tx.result.rtt is None
    assert tx.result.message.error_code == (400, "Bad Request")


def test_mismatched_transaction_id_method_or_class_is_ignored() -> None:
    """RFC 8489 §6.3: only responses with our transaction id count."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    tx.datagrams_to_send(0.0)
    assert not tx.handle_response(response(b"\x02" * 12), 0.1)
    assert not tx.handle_response(response(method=Method.ALLOCATE), 0.1)
    assert not tx.handle_response(parse(request()), 0.1)  # a request is no response
    assert tx.result is None
    assert tx.get_timer() == 0.5
    assert not tx.handle_data(b"garbage", 0.2)
    assert not tx.handle_data(request(b"\x02" * 12), 0.2)
    assert tx.handle_data(response().raw, 0.3)
    assert not tx.handle_response(response(), 0.4)  # after the end


def test_unknown_comprehension_required_attribute_fails_the_transaction() -> None:
    """RFC 8489 §6.3.1: such a response is discarded and the transaction fails."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    tx.datagrams_to_send(0.0)
    reply = MessageBuilder(Method.BINDING, MessageClass.SUCCESS, b"\x01" * 12).add(0x7777, b"x")
    assert tx.handle_response(reply.build(), 0.1)
    assert isinstance(tx.result, Failed)
    assert tx.result.unknown_attributes == (0x7777,)


def test_late_timer_schedules_from_the_actual_send() -> None:
    """A timer that fires late sends late; the next interval counts from that send."""
    tx = ClientTransaction(request(), transport=Transport.UDP, now=0.0)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(0.9)
    tx.datagrams_to_send(0.9)
    assert tx.get_timer() == pytest.approx(1.9)


def test_config_is_validated_and_requests_only() -> None:
    with pytest.raises(ValueError):
        TransactionConfig(rto=0)
    with pytest.raises(ValueError):
        ClientTransaction(response().raw, transport=Transport.UDP, now=0.0)
