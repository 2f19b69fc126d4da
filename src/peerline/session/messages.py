"""The message channel's framing: one QUIC stream per direction, length-prefixed messages.

Why a stream and not QUIC DATAGRAM frames: messages must arrive, in order, and
may be larger than a packet; a stream already gives all three, with QUIC's own
retransmission and flow control. Why one unidirectional stream per direction:
each side opens its own the first time it sends, so neither waits for the other
and the two directions never block each other. Why a 4-byte length: it is the
simplest frame a reader can split without scanning, and the receiver refuses a
length above its `max_message_size` before buffering a byte of it.
"""

from __future__ import annotations

from peerline.session.errors import SessionError

HEADER = 4
"""Bytes of the big-endian length that precedes each message."""


class FramingError(SessionError):
    """The peer's message stream broke the framing (too long, or cut mid-message)."""


def encode_message(data: bytes) -> bytes:
    """One frame: the 4-byte length, then the message."""
    return len(data).to_bytes(HEADER, "big") + data


class MessageReader:
    """Splits the bytes of a message stream back into messages."""

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by `data`; `FramingError` on a length above the limit."""
        self._buffer += data
        messages: list[bytes] = []
        start = 0
        while len(self._buffer) - start >= HEADER:
            length = int.from_bytes(self._buffer[start : start + HEADER], "big")
            if length > self._max:
                raise FramingError(f"a {length}-byte message is over the {self._max}-byte limit")
            end = start + HEADER + length
            if end > len(self._buffer):
                break
            messages.append(bytes(self._buffer[start + HEADER : end]))
            start = end
        del self._buffer[:start]
        return messages

    def finish(self) -> None:
        """The peer ended its message stream: fine between messages, an error inside one."""
        if self._buffer:
            raise FramingError("the message stream ended in the middle of a message")
