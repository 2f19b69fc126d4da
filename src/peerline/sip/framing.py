"""Cutting a byte stream (TCP, TLS) into SIP messages and keepalives.

On a stream, Content-Length is the only way to know where a message ends
(RFC 3261 §18.3), so it is required, and an oversized or unframeable message
is an error the stream cannot recover from: the adapter closes the connection.
Between messages, RFC 5626 §4.4.1 keepalives travel: a double CRLF is a ping,
which the receiving side answers with a single CRLF, the pong.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.sip._syntax import WS
from peerline.sip.errors import MalformedMessage

PING = b"\r\n\r\n"
PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class FramingLimits:
    """Bounds that keep one peer from holding unbounded memory of ours."""

    #: Start line and headers, up to and including the empty line.
    max_header_bytes: int = 16384
    #: Headers plus body.
    max_message_bytes: int = 65536


@dataclass(frozen=True, slots=True)
class MessageBytes:
    """One complete message, ready for `message.parse_message`."""

    data: bytes


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """The peer sent CRLFCRLF: send `PONG` back (RFC 5626 §4.4.1)."""


@dataclass(frozen=True, slots=True)
class KeepAlivePong:
    """The peer answered our ping: the flow is alive."""


FrameEvent = MessageBytes | KeepAlivePing | KeepAlivePong


class StreamFramer:
    """Feed it bytes with `receive_data`, take events from `next_event` until None.

    `sends_pings` is True on the side that opened the flow and pings (the user
    agent): there a lone CRLF is a pong. On the other side (registrar, proxy) a
    double CRLF is a ping and a lone CRLF before a message is skipped, as RFC
    3261 §7.5 asks. Once it has raised `MalformedMessage` the framer stays
    broken: the stream has lost its framing and must be closed.
    """

    def __init__(self, *, sends_pings: bool = False, limits: FramingLimits | None = None) -> None:
        self._buffer = bytearray()
        self._sends_pings = sends_pings
        self._limits = limits or FramingLimits()
        self._error: MalformedMessage | None = None

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received that are not part of any event yet."""
        return len(self._buffer)

    def next_event(self) -> FrameEvent | None:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except MalformedMessage as error:
            self._error = MalformedMessage(error.reason, status=None)
            raise self._error from None

    def _next(self) -> FrameEvent | None:
        buffer = self._buffer
        while buffer.startswith(PONG):
            if self._sends_pings:
                del buffer[:2]
                return KeepAlivePong()
            if buffer.startswith(PING):
                del buffer[:4]
                return KeepAlivePing()
            if len(buffer) < 4 and PING.startswith(bytes(buffer)):
                return None  # the rest of a ping may still be on its way
            del buffer[:2]
        head_end = buffer.find(b"\r\n\r\n")
        limits = self._limits
        if head_end < 0:
            if len(buffer) > limits.max_header_bytes:
                raise MalformedMessage(f"headers longer than {limits.max_header_bytes} bytes")
            return None
        if head_end + 4 > limits.max_header_bytes:
            raise MalformedMessage(f"headers longer than {limits.max_header_bytes} bytes")
        total = head_end + 4 + _content_length(bytes(buffer[:head_end]))
        if total > limits.max_message_bytes:
            raise MalformedMessage(
                f"message of {total} bytes exceeds the limit of {limits.max_message_bytes}"
            )
        if len(buffer) < total:
            return None
        data = bytes(buffer[:total])
        del buffer[:total]
        return MessageBytes(data)


def _content_length(head: bytes) -> int:
    """Content-Length from the raw head, unfolding just enough to read it."""
    values: set[str] = set()
    current: str | None = None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line[:1] in (" ", "\t"):
            if current is not None:
                current += " " + line.strip(WS)
            continue
        if current is not None:
            values.add(current.strip(WS))
        name, colon, value = line.partition(":")
        current = value if colon and name.strip(WS).lower() in ("content-length", "l") else None
    if current is not None:
        values.add(current.strip(WS))
    if not values:
        raise MalformedMessage("message on a stream without Content-Length (RFC 3261 §18.3)")
    if len(values) > 1:
        raise MalformedMessage("Content-Length headers disagree")
    value = values.pop()
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise MalformedMessage(f"bad Content-Length {value[:20]!r}")
    return int(value)
