"""The SIP element's edges with a fake clock: what gets no answer, best-response
selection, Path, Outbound UDP flows and their keepalives, the overload gate, the
per-source budget, tel: targets, forged flow tokens (RFC 3261 §16, RFC 3327, 5626)."""

import pytest

from peerline.ratelimit import RateLimit
from peerline.sip.guard import Guard, GuardConfig
from peerline.sip.headers import Headers
from peerline.sip.message import Response
from peerline.sip.proxy import best_response
from peerline.stun import MessageBuilder, MessageClass, Method
from tests.support.sipphone import (
    DOMAIN,
    Phone,
    make_element,
    reply,
    requests,
    responses,
)

NOW = 1000.0
OUTBOUND_CONTACT = '<sip:alice@10.0.0.2:5062;ob>;+sip.instance="<urn:uuid:a>";reg-id=1'


def registered_alice_and_carol() -> tuple[Phone, Phone]:
    """alice registered from her address; carol, a stranger, to call her."""
    element = make_element()
    alice = Phone(element, "alice", "wonderland", ("198.51.100.7", 5062))
    assert alice.register(NOW).status == 200
    return alice, Phone(element, "carol", "x", ("203.0.113.5", 5060))


def invite(carol: Phone, user: str = "alice", uri: str | None = None) -> bytes:
    return carol.request(
        "INVITE",
        uri or f"sip:{user}@{DOMAIN}",
        to=f"<sip:{user}@{DOMAIN}>",
        from_="<sip:carol@other.test>;tag=c1",
        body="v=0\r\n",
    )


@pytest.mark.parametrize(
    "data",
    [
        # a request whose Via cannot be read: nowhere to send an answer
        b"INVITE sip:alice@example.test SIP/2.0\r\nVia: nonsense\r\nCSeq: 1 INVITE\r\n"
        b"From: <sip:c@o>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: x\r\n\r\n",
        # no CSeq: a client could not match the answer to its transaction
        b"INVITE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKq\r\n"
        b"From: <sip:c@o>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: x\r\n\r\n",
        # a broken response: responses are never answered
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKz\r\nCSeq: x\r\n\r\n",
        # a well-formed response that matches nothing of ours
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKz\r\n"
        b"From: <sip:c@o>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the UDP port
    ],
)
def test_what_cannot_be_answered_is_dropped_without_a_word(data: bytes) -> None:
    element = make_element()
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    assert carol.send(data, NOW) == []
    assert element.counters["requests"] == 0


def test_a_broken_but_routable_request_gets_400_with_the_reason() -> None:
    element = make_element()
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    broken = invite(carol).replace(b"CSeq: 2 INVITE", b"CSeq: 2 INVITE\r\nExpires: soon")
    [answer] = responses(carol.send(broken, NOW))
    assert answer.status == 400
    assert "Expires is not a number" in (answer.headers.get("Warning") or "")


def _final(status: int, *extra: tuple[str, str]) -> Response:
    headers = Headers([("Via", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKb"), *extra])
    return Response(status, "", headers)


def test_best_response_prefers_6xx_then_the_lowest_class() -> None:
    assert best_response([_final(486), _final(603), _final(302)]).status == 603
    assert best_response([_final(486), _final(302), _final(500)]).status == 302
    assert best_response([_final(500), _final(404)]).status == 404


def test_best_response_prefers_challenges_and_merges_them() -> None:
    first = _final(401, ("WWW-Authenticate", 'Digest realm="a", nonce="1"'))
    second = _final(407, ("Proxy-Authenticate", 'Digest realm="b", nonce="2"'))
    best = best_response([_final(404), first, _final(480), second])
    assert best.status == 401
    assert best.headers.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="1"']
    assert best.headers.get_all("Proxy-Authenticate") == ['Digest realm="b", nonce="2"']


def test_best_response_turns_a_503_into_500() -> None:
    """§16.7 step 6: a 503 from downstream must not make the caller back off us."""
    best = best_response([_final(503, ("Retry-After", "30"))])
    assert best.status == 500
    assert "Retry-After" not in best.headers


def test_path_of_an_edge_proxy_becomes_the_route_of_calls() -> None:
    element = make_element()
    edge = Phone(element, "alice", "wonderland", ("198.51.100.50", 5060))
    path = "Path: <sip:edge.example.net;lr;ob>\r\nSupported: path\r\n"
    answer = edge.register(NOW, contact="<sip:alice@10.0.0.2:5062>", extra=path)
    assert answer.status == 200
    assert answer.headers.get_all("Path") == ["<sip:edge.example.net;lr;ob>"]
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    [out] = requests([s for s in carol.send(invite(carol), NOW) if s.flow.remote == edge.address])
    assert out.headers.values("Route") == ["<sip:edge.example.net;lr;ob>"]
    assert str(out.uri) == "sip:alice@10.0.0.2:5062"


def test_outbound_udp_flow_lives_on_keepalives_and_dies_without_them() -> None:
    element = make_element(udp_flow_timeout=60.0)
    alice = Phone(element, "alice", "wonderland", ("198.51.100.7", 40000))
    ok = alice.register(NOW, contact=OUTBOUND_CONTACT, extra="Supported: outbound\r\n")
    assert ok.status == 200
    ping = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode()
    t = NOW
    while t < NOW + 200:  # a STUN keepalive every 30 s keeps the flow
        t += 1.0
        if t % 30 == 0:
            alice.send(ping, t)
        element.handle_timer(t)
    assert element.store.count() == 1
    while t < NOW + 300:  # silence for longer than the timeout: the flow has failed
        t += 1.0
        element.handle_timer(t)
    assert element.store.count() == 0
    assert element.counters["bindings_flow_failed"] == 1


def test_a_busy_loop_turns_new_work_away_before_digest_but_finishes_admitted_calls() -> None:
    alice, carol = registered_alice_and_carol()
    element = alice.element
    [pending] = requests(
        [s for s in carol.send(invite(carol), NOW) if s.flow.remote == alice.address]
    )
    guard = element.guard
    offer(guard, NOW, 2.0, rate=4000, admitted_cost=1e-3, refused_cost=5e-5)
    assert guard.saturated
    failed_before = element.counters["auth_failed"]
    register = alice._register_bytes(
        "Contact: <sip:alice@198.51.100.7:5062>\r\n"
        'Authorization: Digest username="alice", realm="example.test", nonce="x", '
        'uri="sip:example.test", response="00"\r\n'
    )
    [refused] = responses(alice.send(register, NOW + 2.0))
    assert refused.status == 503
    assert 5 <= int(refused.headers.get("Retry-After") or 0) <= 30
    assert element.counters["auth_failed"] == failed_before  # no digest work was done
    ok = alice.send(reply(pending, 200, extra="Contact: <sip:alice@198.51.100.7:5062>"), NOW + 2.1)
    assert [(r.status, s.flow.remote) for r, s in zip(responses(ok), ok, strict=True)] == [
        (200, carol.address)
    ]
    _, t = offer(guard, NOW + 2.0, 2.0, rate=100, admitted_cost=1e-3, refused_cost=5e-5)
    assert guard.admitted_share == 1.0  # the load went away: the gate is open again
    assert responses(carol.send(invite(carol, "bob"), t))[-1].status == 480


def offer(
    guard: Guard,
    start: float,
    seconds: float,
    *,
    rate: float,
    admitted_cost: float,
    refused_cost: float,
    answers_challenge: bool = False,
) -> tuple[list[int], float]:
    """`rate` new requests a second for `seconds`, each timed as the adapter would
    time it, at the cost of what the gate decided; returns the admitted count of
    each half second, and the time at the end."""
    per_window: list[int] = []
    admitted, t, window_end = 0, start, start + 0.5
    for _ in range(int(seconds * rate)):
        t += 1 / rate
        ok = guard.admit(answers_challenge=answers_challenge)
        admitted += ok
        guard.record_busy(admitted_cost if ok else refused_cost, t)
        if t >= window_end:
            per_window.append(admitted)
            admitted, window_end = 0, window_end + 0.5
    return per_window, t


def test_overload_sheds_what_keeps_the_loop_at_the_threshold() -> None:
    """1200 requests/s offered to a loop where each costs 1 ms (a 503, 0.2 ms): the
    gate settles on what keeps the loop at 90 %: 825 admitted a second."""
    guard = Guard(GuardConfig(), NOW)
    windows, _ = offer(guard, NOW, 20.0, rate=1200, admitted_cost=1e-3, refused_cost=2e-4)
    settled = windows[-20:]
    assert all(400 <= a <= 425 for a in settled), settled  # 412 a half second
    assert 0.85 <= guard.busy <= 0.95


def test_heavy_overload_turns_away_at_most_half() -> None:
    """At twice that, refusing enough to stay at 90 % would mean refusing two in
    three: the gate stops at half, since a 503 costs a parse too."""
    guard = Guard(GuardConfig(), NOW)
    windows, _ = offer(guard, NOW, 20.0, rate=2400, admitted_cost=1e-3, refused_cost=2e-4)
    assert windows[-10:] == [600] * 10
    assert guard.admitted_share == 0.5


def test_when_a_503_costs_what_the_work_does_the_gate_stays_open() -> None:
    """Refusing would spare nothing: better to do the work, and let the socket
    buffer drop what does not fit."""
    guard = Guard(GuardConfig(), NOW)
    windows, _ = offer(guard, NOW, 5.0, rate=2000, admitted_cost=1e-3, refused_cost=9.5e-4)
    assert guard.admitted_share == 1.0
    assert windows[-4:] == [1000] * 4  # every request admitted
    assert guard.busy > 1.5  # it is overloaded all the same


def test_the_gate_opens_again_after_a_quiet_spell() -> None:
    guard = Guard(GuardConfig(), NOW)
    _, t = offer(guard, NOW, 3.0, rate=2000, admitted_cost=1e-3, refused_cost=1e-4)
    assert guard.admitted_share < 1.0
    guard.record_busy(1e-3, t + 10.0)  # nothing for ten seconds, then one message
    assert guard.admitted_share == 1.0


def test_answers_to_challenges_get_through_more_readily() -> None:
    guard = Guard(GuardConfig(), NOW)
    offer(guard, NOW, 3.0, rate=4000, admitted_cost=1e-3, refused_cost=5e-5)
    assert guard.admitted_share == 0.5
    plain = sum(guard.admit() for _ in range(1000))
    answers = sum(guard.admit(answers_challenge=True) for _ in range(1000))
    assert (plain, answers) == (500, 750)


def test_one_flooding_source_is_cut_off_and_the_others_are_served() -> None:
    element = make_element(guard=GuardConfig(rate=RateLimit(rate=1.0, burst=5.0)))
    flood = Phone(element, "carol", "x", ("203.0.113.66", 5060))
    options = [
        flood.request("OPTIONS", f"sip:{DOMAIN}", from_="<sip:f@other.test>;tag=f")
        for _ in range(20)
    ]
    answered = sum(len(responses(flood.send(data, NOW))) for data in options)
    assert answered == 5
    assert element.counters["dropped_rate_limited"] == 15
    other = Phone(element, "dave", "x", ("203.0.113.67", 5060))
    data = other.request("OPTIONS", f"sip:{DOMAIN}", from_="<sip:d@other.test>;tag=d")
    assert [r.status for r in responses(other.send(data, NOW))] == [200]
    assert len(responses(flood.send(options[0], NOW + 2.0))) == 1  # its budget refills


def test_tel_targets_are_answered_not_crashed_on() -> None:
    element = make_element()
    carol = Phone(element, "carol", "x", ("203.0.113.5", 5060))
    data = invite(carol, uri="tel:+1-201-555-0123")
    assert responses(carol.send(data, NOW))[-1].status == 403  # no relaying for strangers
    assert element.counters["malformed"] == 0


def test_a_forged_flow_token_routes_nothing() -> None:
    alice, carol = registered_alice_and_carol()
    element = alice.element
    token = element.tokens.encode(alice.flow)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    bye = carol.request(
        "BYE",
        "sip:alice@198.51.100.7:5062",
        to="<sip:alice@example.test>;tag=callee",
        from_="<sip:carol@other.test>;tag=c1",
        extra=f"Route: <sip:{forged}@192.0.2.1:5060;lr>\r\n",
    )
    sends = carol.send(bye, NOW)
    assert all(s.flow.remote != alice.address for s in sends)
    assert [r.status for r in responses(sends)] == [481]  # no dialog we know of
