"""The stateful proxy with a fake clock: routing to bindings, Record-Route and flow
tokens, forking, CANCEL, best response, loops, overload (RFC 3261 §16, RFC 5626)."""

from peerline.sip.message import Request
from peerline.sip.methods import Transport
from peerline.stun import MessageBuilder, MessageClass, Method, parse
from tests.support.sipphone import (
    DOMAIN,
    SERVER,
    Phone,
    make_element,
    messages,
    reply,
    requests,
    responses,
)

NOW = 1000.0


def setup(*contacts: str) -> tuple[Phone, Phone]:
    """alice registered with `contacts` (default: her address); carol outside."""
    element = make_element()
    alice = Phone(element, "alice", "wonderland", ("198.51.100.7", 5062))
    for contact in contacts or (None,):
        assert alice.register(NOW, contact=contact).status == 200
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    return alice, carol


def invite(carol: Phone, user: str = "alice", extra: str = "") -> bytes:
    return carol.request(
        "INVITE",
        f"sip:{user}@{DOMAIN}",
        to=f"<sip:{user}@{DOMAIN}>",
        from_="<sip:carol@other.test>;tag=c1",
        extra=extra,
        body="v=0\r\n",
    )


def test_invite_goes_over_the_registration_flow_with_record_route() -> None:
    alice, carol = setup()
    sends = carol.send(invite(carol), NOW)
    trying = [s for s in sends if s.flow.remote == carol.address]
    assert responses(trying)[0].status == 100
    [out] = [s for s in sends if s.flow.remote == alice.address]
    forwarded = requests([out])[0]
    assert str(forwarded.uri) == "sip:alice@198.51.100.7:5062"
    assert forwarded.max_forwards == 69
    assert len(forwarded.vias) == 2
    assert forwarded.top_via.host == SERVER[0]
    assert len(forwarded.record_routes) == 2
    assert forwarded.body == b"v=0\r\n"


def call(alice: Phone, carol: Phone) -> Request:
    """INVITE through, 180 and 200 back; returns the INVITE as delivered to alice."""
    sent = invite(carol)
    out = requests([s for s in carol.send(sent, NOW) if s.flow.remote == alice.address])[0]
    rr = "".join(f"Record-Route: {v}\r\n" for v in out.headers.get_all("Record-Route"))
    ringing = alice.send(reply(out, 180, extra=rr), NOW)
    assert [r.status for r in responses(ringing)] == [180]
    ok = alice.send(reply(out, 200, extra=rr + "Contact: <sip:alice@198.51.100.7:5062>"), NOW)
    [final] = responses(ok)
    assert final.status == 200
    assert len(final.vias) == 1
    assert ok[0].flow.remote == carol.address
    return out


def test_ringing_and_ok_go_back_to_the_caller() -> None:
    alice, carol = setup()
    call(alice, carol)


def in_dialog(sender: Phone, method: str, routes: list[str], uri: str, cseq: int) -> bytes:
    route = "".join(f"Route: {r}\r\n" for r in routes)
    return sender.request(
        method,
        uri,
        to="<sip:alice@example.test>;tag=callee",
        from_="<sip:carol@other.test>;tag=c1",
        extra=route,
        cseq=cseq,
    )


def test_ack_and_bye_follow_the_route_set_both_ways() -> None:
    alice, carol = setup()
    out = call(alice, carol)
    rrs = out.headers.values("Record-Route")
    caller_route = list(reversed(rrs))
    ack = in_dialog(carol, "ACK", caller_route, "sip:alice@198.51.100.7:5062", 1)
    [delivered] = carol.send(ack.replace(b"CSeq: 1 ACK", b"CSeq: 2 ACK"), NOW)
    assert delivered.flow.remote == alice.address
    assert requests([delivered])[0].method == "ACK"
    bye = alice.request(
        "BYE",
        "sip:carol@203.0.113.5:5060",
        to="<sip:carol@other.test>;tag=c1",
        from_="<sip:alice@example.test>;tag=callee",
        extra="".join(f"Route: {r}\r\n" for r in rrs),
        cseq=1,
    )
    sends = alice.send(bye, NOW)
    [to_carol] = [s for s in sends if s.flow.remote == carol.address]
    assert requests([to_carol])[0].method == "BYE"


def test_parallel_fork_first_200_wins_and_the_other_branch_is_cancelled() -> None:
    alice, carol = setup("<sip:alice@198.51.100.7:5062>", "<sip:alice@198.51.100.7:5064>;q=1.0")
    # both bindings live on the flow of the REGISTER, so both branches go over it
    sends = carol.send(invite(carol), NOW)
    outs = requests([s for s in sends if s.flow.remote == alice.address])
    assert len(outs) == 2
    first, second = outs
    alice.send(reply(second, 180), NOW)
    ok = alice.send(reply(first, 200), NOW)
    assert [r.status for r in responses(ok) if r.status == 200] == [200]
    assert any(m.method == "CANCEL" for m in requests(ok))


def test_sequential_fork_by_q_tries_the_next_after_a_failure() -> None:
    alice, carol = setup(
        "<sip:alice@198.51.100.7:5062>;q=1.0", "<sip:alice@198.51.100.7:5064>;q=0.5"
    )
    sends = carol.send(invite(carol), NOW)
    [first] = requests([s for s in sends if s.flow.remote == alice.address])
    assert str(first.uri).endswith(":5062")
    after = alice.send(reply(first, 486), NOW)
    second = [m for m in requests(after) if m.method == "INVITE"]
    assert str(second[0].uri).endswith(":5064")
    final = alice.send(reply(second[0], 480), NOW)
    assert [r.status for r in responses(final)] == [486]  # the best of 486 and 480


def test_6xx_stops_forking() -> None:
    alice, carol = setup(
        "<sip:alice@198.51.100.7:5062>;q=1.0", "<sip:alice@198.51.100.7:5064>;q=0.5"
    )
    sends = carol.send(invite(carol), NOW)
    [first] = requests([s for s in sends if s.flow.remote == alice.address])
    after = alice.send(reply(first, 603), NOW)
    assert [m.method for m in requests(after)] == ["ACK"]  # hop-by-hop, no new branch
    assert [r.status for r in responses(after)] == [603]


def test_cancel_is_answered_and_passed_on_and_487_comes_back() -> None:
    alice, carol = setup()
    sent = invite(carol, extra="")
    sends = carol.send(sent, NOW)
    [out] = requests([s for s in sends if s.flow.remote == alice.address])
    alice.send(reply(out, 180), NOW)
    cancel = sent.replace(b"INVITE sip", b"CANCEL sip").replace(b" INVITE\r\n", b" CANCEL\r\n")
    cancel = cancel.replace(b"Content-Length: 5\r\n\r\nv=0\r\n", b"Content-Length: 0\r\n\r\n")
    after = carol.send(cancel, NOW)
    assert [r.status for r in responses(after)] == [200]
    [downstream] = requests(after)
    assert downstream.method == "CANCEL"
    assert downstream.top_via.branch == out.top_via.branch
    terminated = alice.send(reply(out, 487), NOW)
    assert 487 in [r.status for r in responses(terminated)]


def test_unknown_cancel_gets_481() -> None:
    _, carol = setup()
    cancel = carol.request("CANCEL", f"sip:alice@{DOMAIN}", from_="<sip:c@other.test>;tag=9")
    assert [r.status for r in responses(carol.send(cancel, NOW))] == [481]


def test_unregistered_user_gets_480() -> None:
    _, carol = setup()
    assert responses(carol.send(invite(carol, "bob"), NOW))[-1].status == 480


def test_request_from_inside_the_domain_needs_proxy_auth() -> None:
    alice, _ = setup()
    bob = Phone(alice.element, "bob", "builder", ("198.51.100.20", 5060))
    data = bob.request("MESSAGE", f"sip:alice@{DOMAIN}", to=f"<sip:alice@{DOMAIN}>", body="hi")
    [challenge] = responses(bob.send(data, NOW))
    assert challenge.status == 407
    header = bob.authorization(challenge, "MESSAGE", f"sip:alice@{DOMAIN}", "Proxy-Authorization")
    data = bob.request(
        "MESSAGE", f"sip:alice@{DOMAIN}", to=f"<sip:alice@{DOMAIN}>", body="hi", extra=header
    )
    [delivered] = bob.send(data, NOW)
    message = requests([delivered])[0]
    assert message.method == "MESSAGE"
    assert message.body == b"hi"
    assert delivered.flow.remote == alice.address
    assert "Record-Route" not in message.headers
    back = alice.send(reply(message, 200), NOW)
    assert back[0].flow.remote == bob.address


def test_options_to_the_server_is_answered() -> None:
    _, carol = setup()
    data = carol.request("OPTIONS", f"sip:{DOMAIN}", from_="<sip:c@other.test>;tag=1")
    [answer] = responses(carol.send(data, NOW))
    assert answer.status == 200
    assert "MESSAGE" in (answer.headers.get("Allow") or "")


def test_max_forwards_zero_gets_483_and_a_loop_gets_482() -> None:
    alice, carol = setup()
    data = invite(carol).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert responses(carol.send(data, NOW))[-1].status == 483
    sends = carol.send(invite(carol), NOW)
    [out] = requests([s for s in sends if s.flow.remote == alice.address])
    # the forwarded INVITE comes back unchanged (a Request-URI pointing at us)
    looped = out.to_bytes().replace(
        b"INVITE sip:alice@198.51.100.7:5062", b"INVITE sip:alice@example.test"
    )
    looped = looped.replace(b"Record-Route", b"X-Old-RR")
    assert 482 in [r.status for r in responses(alice.send(looped, NOW))]


def test_overload_answers_503_with_random_retry_after_but_dialogs_go_on() -> None:
    alice, carol = setup()
    out = call(alice, carol)
    alice.element.guard.forced_overload = True
    answers = [responses(carol.send(invite(carol), NOW))[-1] for _ in range(20)]
    assert {a.status for a in answers} == {503}
    retries = {int(a.headers.get("Retry-After") or 0) for a in answers}
    assert len(retries) > 1
    assert all(5 <= r <= 30 for r in retries)
    bye = in_dialog(carol, "BYE", list(reversed(out.headers.values("Record-Route"))), "sip:a@x", 3)
    assert [s.flow.remote for s in carol.send(bye, NOW)] == [alice.address]


def test_flow_failure_makes_outbound_user_unreachable() -> None:
    element = make_element()
    alice = Phone(element, "alice", "wonderland", ("198.51.100.7", 40000), Transport.TCP, 3)
    element.connection_opened(alice.flow)
    contact = '<sip:alice@10.0.0.2:5062;transport=tcp;ob>;+sip.instance="<urn:uuid:a>";reg-id=1'
    assert alice.register(NOW, contact=contact, extra="Supported: outbound\r\n").status == 200
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    [out] = [s for s in carol.send(invite(carol), NOW) if s.flow.remote == alice.address]
    assert out.flow.connection == 3
    element.flow_closed(alice.flow, NOW)
    assert responses(carol.send(invite(carol), NOW))[-1].status == 480


def test_stun_keepalive_on_the_sip_port_is_answered() -> None:
    alice, _ = setup()
    ping = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode()
    [pong] = alice.send(ping, NOW)
    assert parse(pong.data).xor_mapped_address == alice.address


def test_garbage_is_survived_and_a_broken_request_gets_400() -> None:
    alice, carol = setup()
    for junk in (b"", b"\r\n", b"hello", b"INVITE x SIP/2.0\r\n\r\n", bytes(range(256))):
        carol.send(junk, NOW)
    broken = invite(carol).replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    assert [r.status for r in responses(carol.send(broken, NOW))] == [400]
    assert alice.register(NOW).status == 200


def test_timeouts_give_408_upstream() -> None:
    alice, carol = setup()
    carol.send(invite(carol), NOW)
    element = alice.element
    sent = []
    t = NOW
    while t < NOW + 40:
        t += 0.5
        element.handle_timer(t)
        sent += element.take_sends()
    assert 408 in [r.status for r in responses(sent)]
    assert any(isinstance(m, Request) and m.method == "INVITE" for m in messages(sent))
