"""Messages: building, reading typed headers, answering errors, and the rule that any
bytes either parse or raise MalformedMessage."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.sip import (
    Headers,
    MalformedMessage,
    Method,
    Request,
    Response,
    SipUri,
    StatusClass,
    canonical_name,
    error_response,
    parse_message,
)
from peerline.sip.addresses import Addresses
from peerline.sip.fields import _parse_via, parse_name_address, parse_via
from peerline.sip.flow import Flow
from peerline.sip.message import build_cancel
from peerline.sip.methods import Transport
from peerline.sip.uri import escape

REGISTER = (
    b"REGISTER sip:example.org SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: <sip:alice@example.org>\r\n"
    b"f: Alice <sip:alice@example.org>;tag=456248\r\n"
    b"i: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b'm: <sip:alice@10.0.1.2;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    b";reg-id=1;expires=600;q=0.7, <sip:alice@192.0.2.9>\r\n"
    b"Supported: outbound, path\r\n"
    b"Path: <sip:edge.example.org;lr>\r\n"
    b'WWW-Authenticate: Digest realm="example.org", nonce="abc", qop="auth,auth-int"\r\n'
    b"Expires: 3600\r\n"
    b"X-Unknown: keep me, as I am\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parsed_register() -> Request:
    message = parse_message(REGISTER)
    assert isinstance(message, Request)
    return message


def test_compact_names_are_canonical_and_lookups_ignore_case() -> None:
    msg = parsed_register()
    names = [name for name, _ in msg.headers]
    assert names[:6] == ["Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq"]
    assert msg.headers.get("CALL-ID") == msg.headers.get("i") == "843817637684230@998sdasdh09"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("X-Custom") == "X-Custom"


def test_outbound_contact_fields() -> None:
    first, second = parsed_register().contacts
    assert first.instance == "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF"
    assert (first.reg_id, first.expires, first.q) == (1, 600, 0.7)
    assert isinstance(first.uri, SipUri)
    assert first.uri.ob
    assert (second.instance, second.expires, second.q) == (None, None, None)


def test_list_headers_split_and_others_do_not() -> None:
    msg = parsed_register()
    assert msg.option_tags("Supported") == ("outbound", "path")
    assert msg.headers.values("X-Unknown") == ["keep me, as I am"]
    (challenge,) = msg.auth_fields("WWW-Authenticate")
    assert challenge.get("qop") == "auth,auth-int"
    assert msg.expires == 3600
    (path,) = msg.paths
    assert isinstance(path.uri, SipUri)
    assert path.uri.lr


def test_via_stamping_fills_received_and_rport() -> None:
    via = parsed_register().top_via
    assert via.rport_requested
    assert via.rport is None
    stamped = via.stamped("203.0.113.10", 40001)
    assert (stamped.received, stamped.rport) == ("203.0.113.10", 40001)
    assert str(stamped) == (
        "SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bKnashds7;rport=40001;received=203.0.113.10"
    )
    plain = parse_via("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1")
    assert plain.stamped("192.0.2.1", 5) == plain
    assert plain.stamped("192.0.2.2", 5).received == "192.0.2.2"


def test_response_for_request_copies_what_routes_it_and_tags_to() -> None:
    request = parsed_register()
    ok = Response.for_request(request, 200, to_tag="xyz", extra=(("Expires", "600"),))
    assert (ok.status, ok.reason, ok.status_class) == (200, "OK", StatusClass.SUCCESS)
    assert ok.headers.get_all("Via") == request.headers.get_all("Via")
    assert ok.to.tag == "xyz"
    assert ok.call_id == request.call_id
    assert ok.cseq == request.cseq
    again = parse_message(ok.to_bytes())
    assert again == ok
    trying = Response.for_request(request, 100, to_tag="xyz")
    assert trying.to.tag is None


def test_malformed_request_gets_a_400_with_the_reason() -> None:
    data = REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: 700")
    with pytest.raises(MalformedMessage) as caught:
        parse_message(data)
    assert "Max-Forwards out of range" in caught.value.reason
    response = error_response(caught.value)
    assert response is not None
    assert response.status == 400
    assert response.call_id == "843817637684230@998sdasdh09"
    warning = response.headers.get("Warning") or ""
    assert warning.startswith('399 peerline "Max-Forwards out of range')


def test_unroutable_or_response_errors_get_no_answer() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(b"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\n")
    assert caught.value.status is None
    assert error_response(caught.value) is None


def test_building_a_request_from_parts() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.org>;tag=1"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
        ]
    )
    request = Request(Method.MESSAGE, SipUri("example.org", "bob"), headers, b"hi \xe2\x98\x83")
    wire = request.to_bytes()
    assert b"Content-Length: 6\r\n\r\nhi \xe2\x98\x83" in wire
    assert parse_message(wire) == request.__class__(
        request.method, request.uri, headers.with_added("Content-Length", "6"), request.body
    )
    cancel = build_cancel(request)
    assert (cancel.method, cancel.cseq.method, cancel.top_via) == (
        Method.CANCEL,
        Method.CANCEL,
        request.top_via,
    )


def test_header_list_operations() -> None:
    headers = parsed_register().headers
    headers = headers.with_first("Via", "SIP/2.0/UDP proxy.example.org;branch=z9hG4bKp")
    assert headers.values("Via")[0].startswith("SIP/2.0/UDP proxy")
    assert len(headers.without_first_value("Via").values("Via")) == 1
    two = headers.with_set("Route", "<sip:a;lr>, <sip:b;lr>")
    assert two.without_first_value("Route").get("Route") == "<sip:b;lr>"
    assert "Route" not in two.without("route")
    assert two.with_set("Max-Forwards", "69").get("Max-Forwards") == "69"


def test_display_names_round_trip_through_quoting() -> None:
    addr = parse_name_address('"Joe \\"J\\" O\'Hara" <sip:joe@example.org>;tag=9')
    assert addr.display_name == 'Joe "J" O\'Hara'
    assert parse_name_address(str(addr)) == addr
    assert parse_name_address(str(addr.with_tag("10"))).tag == "10"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no empty line"),
        (b"INVITE sip:a@b SIP/2.0\nVia: x\r\n\r\n", "bare CR or LF"),
        (REGISTER.replace(b"\r\nv: ", b"\r\n v: "), "continuation"),
        (REGISTER.replace(b"Max-Forwards:", b"Max Forwards:"), "bad header name"),
        (REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "without ':'"),
        (REGISTER.replace(b"CSeq: 1826", b"CSeq: x"), "bad CSeq"),
        (REGISTER.replace(b";q=0.7", b";q=1.5"), "bad q value"),
        (REGISTER.replace(b"<sip:alice@192.0.2.9>", b"*"), "must stand alone"),
        (REGISTER.replace(b"Expires: 3600", b"Expires: soon"), "Expires is not a number"),
        (REGISTER.replace(b"v: SIP/2.0/UDP", b"v: SIP/2.0"), "bad Via"),
        (REGISTER.replace(b"branch=z9hG4bKnashds7", b'branch="x"'), "bad Via branch"),
        (b"SIP/2.0 20 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n", "status code must be 100-699"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "bad method"),
        (b"GET / HTTP/1.1\r\n\r\n", "bad SIP version"),
    ],
)
def test_malformed_messages_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(data)
    assert reason in caught.value.reason


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_malformed_message(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_message(data)


@settings(max_examples=300)
@given(
    position=st.integers(min_value=0, max_value=len(REGISTER)),
    junk=st.binary(min_size=1, max_size=8),
    drop=st.integers(min_value=0, max_value=4),
)
def test_mutated_messages_parse_or_raise_malformed_message(
    position: int, junk: bytes, drop: int
) -> None:
    data = REGISTER[:position] + junk + REGISTER[position + drop :]
    try:
        message = parse_message(data)
    except MalformedMessage:
        return
    assert parse_message(message.to_bytes()).to_bytes() == message.to_bytes()


_token = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n", min_codepoint=32),
    max_size=30,
).map(str.strip)
_extra_headers = st.lists(st.tuples(_token.map(lambda t: "X-" + t), _value), max_size=4)


@given(
    method=st.sampled_from([*Method, "NEWMETHOD"]),
    user=_token,
    extra=_extra_headers,
    body=st.binary(max_size=64),
    status=st.integers(100, 699),
    reason=_value,
)
def test_generated_messages_round_trip(
    method: str,
    user: str,
    extra: list[tuple[str, str]],
    body: bytes,
    status: int,
    reason: str,
) -> None:
    user = escape(user)
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK77"),
            ("From", f"<sip:{user}@example.org>;tag=1"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "call@1"),
            ("CSeq", f"7 {method}"),
            *extra,
            ("Content-Length", str(len(body))),
        ]
    )
    request = Request(method, SipUri("example.org", user), headers, body)
    assert parse_message(request.to_bytes()) == request
    response = Response(status, reason, headers, body)
    assert parse_message(response.to_bytes()) == response


_names = st.sampled_from(["Via", "v", "Route", "Record-Route", "Max-Forwards", "X-A"])


@given(
    lines=st.lists(st.tuples(_names, _token), max_size=8),
    set_to=st.lists(st.tuples(_names, _token), max_size=2),
    first=st.lists(st.tuples(_names, _token), max_size=4),
)
def test_one_edited_copy_equals_the_edits_one_by_one(
    lines: list[tuple[str, str]],
    set_to: list[tuple[str, str]],
    first: list[tuple[str, str]],
) -> None:
    headers = Headers(lines)
    expected = headers
    for name, value in set_to:
        expected = expected.with_set(name, value)
    for name, value in first:
        expected = expected.with_first(name, value)
    edited = headers.edited(set_to=set_to, first=first)
    assert edited == expected
    assert [edited.get_all(n) for n, _ in lines] == [expected.get_all(n) for n, _ in lines]


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-1;rport",
        "SIP/2.0/TCP [2001:db8::7]:5062;branch=z9hG4bK-2",
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK-3;rport;alias",
    ],
)
def test_vias_we_write_read_back_as_themselves(text: str) -> None:
    """What the element remembers of the Vias it writes (its own, the stamped one)
    is exactly what parsing them would give."""
    stamped = _parse_via(text).stamped("203.0.113.9", 40000)
    assert _parse_via(str(stamped)) == stamped
    for transport, local in ((Transport.UDP, ("192.0.2.1", 5060)), (Transport.TLS, ("::1", 5061))):
        ours = Addresses("example.test").via(Flow(transport, local, ("203.0.113.9", 1)), "z9hG4bKx")
        assert _parse_via(str(ours)) == ours
