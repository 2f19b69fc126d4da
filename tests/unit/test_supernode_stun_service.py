"""The supernode's Binding service, sans-IO: what it answers, from where, and when not."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.stun import (
    AttributeType,
    ChangeRequest,
    ErrorCode,
    MessageBuilder,
    MessageClass,
    Method,
    parse,
    verify_fingerprint,
)
from peerline.supernode.config import build_config
from peerline.supernode.stun_service import Rfc5780Addresses, StunService, stun_framer
from peerline.supernode.transports import Transport

CLIENT = ("198.51.100.7", 40000)
PRIMARY = ("203.0.113.1", 3478)
ADDRESSES = Rfc5780Addresses("203.0.113.1", "203.0.113.2", 3478, 3479)


def service(*, rfc5780: bool = True, rate: float = 0) -> StunService:
    flags = {"listen": ["203.0.113.1"], "rate": rate, "burst": 5}
    if rfc5780:
        flags["alt_ip"] = "203.0.113.2"
    return StunService(build_config({}, flags), ADDRESSES if rfc5780 else None, now=0.0)


def request(**attrs: object) -> MessageBuilder:
    builder = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
    if "change" in attrs:
        builder.add_change_request(attrs["change"])  # type: ignore[arg-type]
    if "response_port" in attrs:
        builder.add_port(AttributeType.RESPONSE_PORT, attrs["response_port"])  # type: ignore[arg-type]
    if "padding" in attrs:
        builder.add(AttributeType.PADDING, bytes(attrs["padding"]))  # type: ignore[call-overload]
    return builder


def test_binding_success_echoes_source_and_fingerprint() -> None:
    reply = service(rfc5780=False).handle(
        request().encode(fingerprint=True), CLIENT, PRIMARY, Transport.UDP, 0.0
    )
    assert reply is not None
    assert (reply.local, reply.destination) == (PRIMARY, CLIENT)
    response = parse(reply.data)
    assert response.message_class is MessageClass.SUCCESS
    assert response.xor_mapped_address == CLIENT
    assert verify_fingerprint(response)


def test_rfc5780_attributes_only_when_enabled() -> None:
    data = request().encode()
    plain = service(rfc5780=False).handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0)
    full = service().handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0)
    assert plain is not None
    assert full is not None
    assert parse(plain.data).other_address is None
    response = parse(full.data)
    assert response.other_address == ("203.0.113.2", 3479)
    assert response.response_origin == PRIMARY


@pytest.mark.parametrize(
    ("change", "sender"),
    [
        (ChangeRequest(change_ip=True, change_port=True), ("203.0.113.2", 3479)),
        (ChangeRequest(change_port=True), ("203.0.113.1", 3479)),
        (ChangeRequest(change_ip=True), ("203.0.113.2", 3478)),
        (ChangeRequest(), PRIMARY),
    ],
)
def test_change_request_picks_the_sending_socket(
    change: ChangeRequest, sender: tuple[str, int]
) -> None:
    reply = service().handle(request(change=change).encode(), CLIENT, PRIMARY, Transport.UDP, 0.0)
    assert reply is not None
    assert reply.local == sender
    assert parse(reply.data).response_origin == sender


def test_other_address_is_relative_to_the_receiving_socket() -> None:
    reply = service().handle(request().encode(), CLIENT, ("203.0.113.2", 3479), Transport.UDP, 0.0)
    assert reply is not None
    assert parse(reply.data).other_address == PRIMARY


def test_response_port_redirects_to_the_same_ip() -> None:
    reply = service().handle(
        request(response_port=5555).encode(), CLIENT, PRIMARY, Transport.UDP, 0.0
    )
    assert reply is not None
    assert reply.destination == (CLIENT[0], 5555)


def test_change_request_over_tcp_is_a_bad_request() -> None:
    data = request(change=ChangeRequest(change_ip=True)).encode()
    reply = service().handle(data, CLIENT, PRIMARY, Transport.TCP, 0.0)
    assert reply is not None
    error = parse(reply.data).error_code
    assert error is not None
    assert error.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("unknown", [0x0003, 0x0027, 0x7F00])
def test_unknown_comprehension_required_gets_420(unknown: int) -> None:
    data = MessageBuilder(Method.BINDING, MessageClass.REQUEST).add(unknown, b"\0\0\0\0").encode()
    reply = service(rfc5780=False).handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0)
    assert reply is not None
    response = parse(reply.data)
    error = response.error_code
    assert error is not None
    assert error.code == ErrorCode.UNKNOWN_ATTRIBUTE
    assert response.unknown_attributes == [unknown]


def test_unknown_comprehension_optional_is_ignored() -> None:
    data = MessageBuilder(Method.BINDING, MessageClass.REQUEST).add(0xC001, b"x").encode()
    reply = service().handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0)
    assert reply is not None
    assert parse(reply.data).message_class is MessageClass.SUCCESS


@pytest.mark.parametrize("rfc5780", [False, True])
@pytest.mark.parametrize("source", [CLIENT, ("2001:db8::7", 40000)])
def test_no_amplification(rfc5780: bool, source: tuple[str, int]) -> None:
    """Extras only while the answer stays no larger than the request; the core answer
    (XOR-MAPPED-ADDRESS, RFC 5780 addresses, FINGERPRINT) is bounded by a constant."""
    small = request().encode()
    reply = service(rfc5780=rfc5780).handle(small, source, PRIMARY, Transport.UDP, 0.0)
    assert reply is not None
    assert len(reply.data) <= 20 + 24 + 24 + 8
    assert parse(reply.data).mapped_address is None
    padded = request(padding=96).encode(fingerprint=True)
    reply = service(rfc5780=rfc5780).handle(padded, source, PRIMARY, Transport.UDP, 0.0)
    assert reply is not None
    assert len(reply.data) <= len(padded)
    response = parse(reply.data)
    assert response.mapped_address == source
    assert response.software == "peerline"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x00\x00",
        b"GET / HTTP/1.1\r\n\r\n",
        request().encode()[:-1],
        MessageBuilder(Method.BINDING, MessageClass.SUCCESS).encode(),
        MessageBuilder(Method.BINDING, MessageClass.INDICATION).encode(),
    ],
)
def test_garbage_responses_and_indications_are_dropped(data: bytes) -> None:
    assert service().handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0) is None


def test_bad_fingerprint_is_dropped() -> None:
    data = bytearray(request().encode(fingerprint=True))
    data[-1] ^= 0xFF
    assert service().handle(bytes(data), CLIENT, PRIMARY, Transport.UDP, 0.0) is None


def test_rate_limit_per_source_and_refill() -> None:
    limited = service(rate=10)
    data = request().encode()
    answered = [limited.handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0) for _ in range(20)]
    assert sum(reply is not None for reply in answered) == 5  # the burst
    assert limited.handle(data, ("198.51.100.8", 1), PRIMARY, Transport.UDP, 0.0) is not None
    assert limited.handle(data, CLIENT, PRIMARY, Transport.UDP, 1.0) is not None
    assert limited.counters["dropped_rate_limited"] == 15


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_never_raise(data: bytes) -> None:
    service().handle(data, CLIENT, PRIMARY, Transport.UDP, 0.0)
    assert stun_framer(bytearray(data)) >= -1


def test_stream_framer() -> None:
    message = request().encode()
    assert stun_framer(bytearray(message[:10])) == 0
    assert stun_framer(bytearray(message + b"more")) == len(message)
    assert stun_framer(bytearray(b"\xff" * 20)) == -1
