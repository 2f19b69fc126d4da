"""Cutting streams into messages and RFC 5626 keepalives."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.sip import MalformedMessage, parse_message
from peerline.sip.framing import (
    PING,
    PONG,
    FramingLimits,
    KeepAlivePing,
    KeepAlivePong,
    MessageBytes,
    StreamFramer,
)

OPTIONS = (
    b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Content-Type: text/plain\r\n"
    b"l: 5\r\n\r\nhello"
)


def drain(framer: StreamFramer) -> list[object]:
    out: list[object] = []
    while (event := framer.next_event()) is not None:
        out.append(event)
    return out


def test_two_messages_and_a_ping_in_one_read() -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS + PING + OPTIONS)
    assert drain(framer) == [MessageBytes(OPTIONS), KeepAlivePing(), MessageBytes(OPTIONS)]
    assert framer.buffered == 0
    assert parse_message(OPTIONS).body == b"hello"


@given(cuts=st.lists(st.integers(min_value=0, max_value=2 * len(OPTIONS) + 4), max_size=8))
def test_any_segmentation_gives_the_same_events(cuts: list[int]) -> None:
    data = OPTIONS + PING + OPTIONS
    framer = StreamFramer()
    seen: list[object] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        framer.receive_data(data[start:cut])
        start = max(start, cut)
        seen += drain(framer)
    assert seen == [MessageBytes(OPTIONS), KeepAlivePing(), MessageBytes(OPTIONS)]


def test_a_ping_split_in_two_waits_for_its_second_half() -> None:
    framer = StreamFramer()
    framer.receive_data(b"\r\n")
    assert framer.next_event() is None
    framer.receive_data(b"\r\n")
    assert framer.next_event() == KeepAlivePing()


def test_a_stray_crlf_before_a_message_is_skipped() -> None:
    framer = StreamFramer()
    framer.receive_data(b"\r\n" + OPTIONS)
    assert drain(framer) == [MessageBytes(OPTIONS)]


def test_the_pinging_side_reads_a_lone_crlf_as_a_pong() -> None:
    framer = StreamFramer(sends_pings=True)
    framer.receive_data(PONG)
    assert framer.next_event() == KeepAlivePong()
    framer.receive_data(PONG + OPTIONS)
    assert drain(framer) == [KeepAlivePong(), MessageBytes(OPTIONS)]


def test_a_message_without_content_length_cannot_be_framed() -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS.replace(b"l: 5\r\n", b""))
    with pytest.raises(MalformedMessage, match="without Content-Length"):
        framer.next_event()
    with pytest.raises(MalformedMessage):  # and the stream stays broken
        framer.next_event()


@pytest.mark.parametrize("value", [b"-5", b"five", b"99999999999"])
def test_bad_content_length_breaks_the_stream(value: bytes) -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS.replace(b"l: 5", b"l: " + value))
    with pytest.raises(MalformedMessage, match="Content-Length"):
        framer.next_event()


def test_oversized_headers_and_messages_are_refused_early() -> None:
    limits = FramingLimits(max_header_bytes=64, max_message_bytes=1000)
    framer = StreamFramer(limits=limits)
    framer.receive_data(b"X" * 65)
    with pytest.raises(MalformedMessage, match="headers longer than 64 bytes"):
        framer.next_event()
    framer = StreamFramer(limits=FramingLimits(max_message_bytes=300))
    framer.receive_data(OPTIONS.replace(b"l: 5", b"l: 100"))
    with pytest.raises(MalformedMessage, match="exceeds the limit of 300"):
        framer.next_event()


def test_folded_content_length_is_read() -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS.replace(b"l: 5", b"Content-Length:\r\n 5"))
    (event,) = drain(framer)
    assert isinstance(event, MessageBytes)
    assert parse_message(event.data).body == b"hello"


@given(st.binary(max_size=300))
def test_any_bytes_give_events_or_malformed_message(data: bytes) -> None:
    framer = StreamFramer(limits=FramingLimits(max_header_bytes=128, max_message_bytes=256))
    framer.receive_data(data)
    with contextlib.suppress(MalformedMessage):
        drain(framer)
