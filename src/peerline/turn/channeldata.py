"""ChannelData messages (RFC 8656 §12.4): a 4-byte header instead of a STUN message.

RFC 8656 gives clients channel numbers 0x4000-0x4FFF; RFC 5766 allowed up to
0x7FFE and clients built on it (coturn's tools among them) still pick numbers
there, so the server accepts the old range. Either way the first byte is
0x40-0x7F, which is how a receiver tells ChannelData from STUN (first bits 00). Over
UDP the message is exactly header + data; over TCP and TLS it is padded to a
multiple of 4 bytes so the next message starts aligned.
"""

from __future__ import annotations

import struct

from peerline.stun import MalformedMessage, frame_length

MIN_CHANNEL = 0x4000
MAX_CHANNEL = 0x7FFE
#: What a client picks from (RFC 8656 §12).
MAX_CLIENT_CHANNEL = 0x4FFF
HEADER = struct.Struct(">HH")
#: Zero padding by `length & 3`, so framing never builds a fresh bytes object.
PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def is_channel_data(data: bytes | bytearray) -> bool:
    """True when the first byte puts the message in the ChannelData range."""
    return bool(data) and 0x40 <= data[0] <= 0x7F


def valid_channel(number: int) -> bool:
    return MIN_CHANNEL <= number <= MAX_CHANNEL


def encode_channel_data(number: int, data: bytes, *, pad: bool = False) -> bytes:
    """Header + data (+ zero padding to 4 bytes when `pad`, for stream transports)."""
    n = len(data)
    if n > 0xFFFF or not valid_channel(number):
        raise ValueError("channel number out of range or data longer than 65535 bytes")
    head = HEADER.pack(number, n)
    return head + data + PADDING[n & 3] if pad else head + data


def decode_channel_data(data: bytes) -> tuple[int, bytes]:
    """(channel number, application data) of one whole message; padding is allowed
    after the data (RFC 8656 §12.5 lets UDP senders pad too)."""
    if len(data) < 4:
        raise MalformedMessage("ChannelData shorter than its header")
    number, length = HEADER.unpack_from(data)
    if not valid_channel(number) or 4 + length > len(data):
        raise MalformedMessage("bad ChannelData channel or length")
    return number, data[4 : 4 + length]


def stream_frame_length(buffer: bytes | bytearray) -> int | None:
    """Size of the first message (STUN or padded ChannelData) on a TCP/TLS stream,
    or None while fewer than 4 bytes are known; `MalformedMessage` for anything else."""
    if len(buffer) < 4:
        return None
    if 0x40 <= buffer[0] <= 0x7F:
        length = buffer[2] << 8 | buffer[3]
        return 4 + length + (-length & 3)
    return frame_length(buffer)


def stream_framer(buffer: bytearray) -> int:
    """The supernode's stream framer for TURN: size of the first whole message,
    0 when more bytes are needed, -1 when the stream is not STUN/ChannelData."""
    try:
        size = stream_frame_length(buffer)
    except MalformedMessage:
        return -1
    if size is None or len(buffer) < size:
        return 0
    return size
