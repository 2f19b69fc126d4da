"""STUN messages (RFC 8489 §5, §14): parse once, decode attribute values lazily.

`parse` makes one pass over the bytes with `struct.unpack_from` and records, per
attribute, only its type and where its value lies; values are sliced and decoded
when a caller asks. A `Message` keeps the bytes it came from, so unknown
attributes (and even non-zero padding) are re-encoded exactly as received.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from peerline.stun import attributes as av
from peerline.stun.constants import (
    FINGERPRINT_XOR,
    HEADER_SIZE,
    KNOWN_ATTRIBUTE_TYPES,
    MAGIC_COOKIE,
    AttributeType,
    MessageClass,
    Method,
)
from peerline.stun.errors import EncodeError, MalformedMessage

_HEADER = struct.Struct(">HHI")
_TL = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_MI = int(AttributeType.MESSAGE_INTEGRITY)
_MI256 = int(AttributeType.MESSAGE_INTEGRITY_SHA256)
_FP = int(AttributeType.FINGERPRINT)
_TRAILERS = frozenset((_MI, _MI256, _FP))
_MI_HEAD = _TL.pack(_MI, 20)
_MI256_HEAD = _TL.pack(_MI256, 32)
_FP_HEAD = _TL.pack(_FP, 4)
_MAX_BODY = 0xFFFF - 3  # the length field is 16 bits and a multiple of 4
_METHODS = {int(m): m for m in Method}
_CLASSES = tuple(MessageClass)
_TYPES = {int(t): t for t in AttributeType}


class Attribute(NamedTuple):
    """One attribute: `type` is an `AttributeType` when known, else the raw int."""

    type: int
    value: bytes


def _message_type(method: int, message_class: int) -> int:
    """RFC 8489 §5: the class bits C1 C0 sit at bits 8 and 4, between method bits."""
    if not 0 <= method <= 0xFFF:
        raise EncodeError(f"method out of range: {method}")
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 2) << 7)
        | ((message_class & 1) << 4)
    )


def _split_type(mtype: int) -> tuple[int, MessageClass]:
    method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    return _METHODS.get(method, method), _CLASSES[((mtype >> 7) & 2) | ((mtype >> 4) & 1)]


def _tlv(attr_type: int, value: bytes) -> bytes:
    n = len(value)
    if n > _MAX_BODY or not 0 <= attr_type <= 0xFFFF:
        raise EncodeError("attribute type or length out of range")
    return _TL.pack(attr_type, n) + value + bytes(-n % 4)


def encode_attributes(attributes: Iterable[tuple[int, bytes]]) -> bytes:
    """TLV-encode attributes with zero padding, e.g. once at start-up for the
    constant attributes a server adds to every response (SOFTWARE, OTHER-ADDRESS)."""
    return b"".join(_tlv(t, v) for t, v in attributes)


class Message:
    """A STUN message: method, class, 12-byte transaction id, ordered attributes.

    Attributes that follow MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256
    and FINGERPRINT) are not listed: RFC 8489 §14.5 says to ignore them. `raw`
    still holds every byte.
    """

    __slots__ = ("_buf", "_spans", "message_class", "method", "transaction_id")

    method: int
    message_class: MessageClass
    transaction_id: bytes
    _buf: bytes
    _spans: list[tuple[int, int, int]]

    def __init__(
        self,
        method: int,
        message_class: MessageClass,
        transaction_id: bytes,
        attributes: Iterable[tuple[int, bytes]] = (),
    ) -> None:
        if len(transaction_id) != 12:
            raise EncodeError("transaction id must be 12 bytes")
        body = encode_attributes(attributes)
        if len(body) > _MAX_BODY:
            raise EncodeError("message longer than 65535 bytes")
        mtype = _message_type(method, message_class)
        buf = _HEADER.pack(mtype, len(body), MAGIC_COOKIE) + bytes(transaction_id) + body
        self._init(buf, mtype)

    def _init(self, buf: bytes, mtype: int) -> None:
        self.method, self.message_class = _split_type(mtype)
        self.transaction_id = buf[8:20]
        self._buf = buf
        self._spans = _scan(buf)

    # -- generic access ----------------------------------------------------------

    @property
    def raw(self) -> bytes:
        """The whole message as bytes: what was parsed, or the encoding of what was built."""
        return self._buf

    @property
    def attributes(self) -> list[Attribute]:
        """All attributes in order (built on each call: prefer `get` on hot paths)."""
        buf = self._buf
        return [Attribute(_TYPES.get(t, t), buf[s:e]) for t, s, e in self._spans]

    def types(self) -> list[int]:
        """Attribute types in order, without slicing any value."""
        return [t for t, _, _ in self._spans]

    def __contains__(self, attr_type: object) -> bool:
        return any(t == attr_type for t, _, _ in self._spans)

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes)

    def get(self, attr_type: int) -> bytes | None:
        """The value of the first attribute of this type (RFC 8489 §14: the first counts)."""
        for t, s, e in self._spans:
            if t == attr_type:
                return self._buf[s:e]
        return None

    def get_all(self, attr_type: int) -> list[bytes]:
        """Every value of this type, in order (e.g. several XOR-PEER-ADDRESS)."""
        buf = self._buf
        return [buf[s:e] for t, s, e in self._spans if t == attr_type]

    def _span(self, attr_type: int) -> tuple[int, int, int] | None:
        for span in self._spans:
            if span[0] == attr_type:
                return span
        return None

    def without_integrity(self) -> Message:
        """This message cut before its first MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT,
        byte for byte (padding included), ready to be signed again by `encode`."""
        cut = next((s - 4 for t, s, _ in self._spans if t in _TRAILERS), len(self._buf))
        buf = bytearray(self._buf[:cut])
        _U16.pack_into(buf, 2, cut - HEADER_SIZE)
        out = Message.__new__(Message)
        out._init(bytes(buf), _U16.unpack_from(buf)[0])
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.method == other.method
            and self.message_class == other.message_class
            and self.transaction_id == other.transaction_id
            and self.attributes == other.attributes
        )

    def __hash__(self) -> int:
        return hash((self.method, self.message_class, self.transaction_id))

    def __repr__(self) -> str:
        names = [_TYPES[t].name if t in _TYPES else hex(t) for t in self.types()]
        method = self.method.name if isinstance(self.method, Method) else hex(self.method)
        return (
            f"<Message {method} {self.message_class.name} tid={self.transaction_id.hex()} {names}>"
        )

    # -- typed access: None when absent, MalformedMessage when unreadable --------

    def _address(self, attr_type: int) -> av.TransportAddress | None:
        value = self.get(attr_type)
        return None if value is None else av.decode_address(value)

    def _xor_address(self, attr_type: int) -> av.TransportAddress | None:
        value = self.get(attr_type)
        return None if value is None else av.decode_xor_address(value, self.transaction_id)

    def _text(self, attr_type: int) -> str | None:
        value = self.get(attr_type)
        return None if value is None else av.decode_text(value)

    def _u32(self, attr_type: int) -> int | None:
        value = self.get(attr_type)
        return None if value is None else av.decode_u32(value)

    def _u64(self, attr_type: int) -> int | None:
        value = self.get(attr_type)
        return None if value is None else av.decode_u64(value)

    @property
    def mapped_address(self) -> av.TransportAddress | None:
        """MAPPED-ADDRESS (RFC 8489 §14.1), sent by old servers and rewritten by ALGs."""
        return self._address(AttributeType.MAPPED_ADDRESS)

    @property
    def xor_mapped_address(self) -> av.TransportAddress | None:
        """XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the reflexive address."""
        return self._xor_address(AttributeType.XOR_MAPPED_ADDRESS)

    @property
    def alternate_server(self) -> av.TransportAddress | None:
        """ALTERNATE-SERVER (RFC 8489 §14.15), with 300 Try Alternate."""
        return self._address(AttributeType.ALTERNATE_SERVER)

    @property
    def response_origin(self) -> av.TransportAddress | None:
        """RESPONSE-ORIGIN (RFC 5780 §7.3): where the response was sent from."""
        return self._address(AttributeType.RESPONSE_ORIGIN)

    @property
    def other_address(self) -> av.TransportAddress | None:
        """OTHER-ADDRESS (RFC 5780 §7.4): the server's alternate IP and port."""
        return self._address(AttributeType.OTHER_ADDRESS)

    @property
    def xor_peer_addresses(self) -> list[av.TransportAddress]:
        """Every XOR-PEER-ADDRESS (RFC 8656 §18.3); CreatePermission may carry several."""
        tid = self.transaction_id
        return [av.decode_xor_address(v, tid) for v in self.get_all(AttributeType.XOR_PEER_ADDRESS)]

    @property
    def xor_relayed_address(self) -> av.TransportAddress | None:
        """XOR-RELAYED-ADDRESS (RFC 8656 §18.5)."""
        return self._xor_address(AttributeType.XOR_RELAYED_ADDRESS)

    @property
    def error_code(self) -> av.ErrorCodeValue | None:
        """ERROR-CODE (RFC 8489 §14.8) as (code, reason)."""
        value = self.get(AttributeType.ERROR_CODE)
        return None if value is None else av.decode_error_code(value)

    @property
    def unknown_attributes(self) -> list[int] | None:
        """UNKNOWN-ATTRIBUTES (RFC 8489 §14.9), with 420."""
        value = self.get(AttributeType.UNKNOWN_ATTRIBUTES)
        return None if value is None else av.decode_unknown_attributes(value)

    @property
    def change_request(self) -> av.ChangeRequest | None:
        """CHANGE-REQUEST (RFC 5780 §7.2)."""
        value = self.get(AttributeType.CHANGE_REQUEST)
        return None if value is None else av.decode_change_request(value)

    @property
    def response_port(self) -> int | None:
        """RESPONSE-PORT (RFC 5780 §7.5)."""
        value = self.get(AttributeType.RESPONSE_PORT)
        return None if value is None else av.decode_port(value)

    @property
    def username(self) -> str | None:
        """USERNAME (RFC 8489 §14.3)."""
        return self._text(AttributeType.USERNAME)

    @property
    def userhash(self) -> bytes | None:
        """USERHASH (RFC 8489 §14.4), 32 bytes."""
        value = self.get(AttributeType.USERHASH)
        if value is not None and len(value) != 32:
            raise MalformedMessage("USERHASH must be 32 bytes")
        return value

    @property
    def realm(self) -> str | None:
        """REALM (RFC 8489 §14.9)."""
        return self._text(AttributeType.REALM)

    @property
    def nonce(self) -> str | None:
        """NONCE (RFC 8489 §14.10)."""
        return self._text(AttributeType.NONCE)

    @property
    def software(self) -> str | None:
        """SOFTWARE (RFC 8489 §14.14)."""
        return self._text(AttributeType.SOFTWARE)

    @property
    def alternate_domain(self) -> str | None:
        """ALTERNATE-DOMAIN (RFC 8489 §14.16), the TLS name of ALTERNATE-SERVER."""
        return self._text(AttributeType.ALTERNATE_DOMAIN)

    @property
    def password_algorithms(self) -> list[av.PasswordAlgorithmEntry] | None:
        """PASSWORD-ALGORITHMS (RFC 8489 §14.11) offered by a server."""
        value = self.get(AttributeType.PASSWORD_ALGORITHMS)
        return None if value is None else av.decode_password_algorithms(value)

    @property
    def password_algorithm(self) -> av.PasswordAlgorithmEntry | None:
        """PASSWORD-ALGORITHM (RFC 8489 §14.12) chosen by a client."""
        value = self.get(AttributeType.PASSWORD_ALGORITHM)
        return None if value is None else av.decode_password_algorithm(value)

    @property
    def priority(self) -> int | None:
        """PRIORITY (RFC 8445 §7.1.1)."""
        return self._u32(AttributeType.PRIORITY)

    @property
    def use_candidate(self) -> bool:
        """USE-CANDIDATE (RFC 8445 §7.1.2): a flag, present or not."""
        return AttributeType.USE_CANDIDATE in self

    @property
    def ice_controlled(self) -> int | None:
        """ICE-CONTROLLED tie-breaker (RFC 8445 §7.1.3)."""
        return self._u64(AttributeType.ICE_CONTROLLED)

    @property
    def ice_controlling(self) -> int | None:
        """ICE-CONTROLLING tie-breaker (RFC 8445 §7.1.3)."""
        return self._u64(AttributeType.ICE_CONTROLLING)

    @property
    def lifetime(self) -> int | None:
        """LIFETIME in seconds (RFC 8656 §18.2)."""
        return self._u32(AttributeType.LIFETIME)

    @property
    def channel_number(self) -> int | None:
        """CHANNEL-NUMBER (RFC 8656 §18.1)."""
        value = self.get(AttributeType.CHANNEL_NUMBER)
        return None if value is None else av.decode_port(value)

    @property
    def requested_transport(self) -> int | None:
        """REQUESTED-TRANSPORT protocol number (RFC 8656 §18.7): 17 UDP, 6 TCP."""
        value = self.get(AttributeType.REQUESTED_TRANSPORT)
        return None if value is None else av.decode_byte(value)

    @property
    def data(self) -> bytes | None:
        """DATA (RFC 8656 §18.4): the application payload, as is."""
        return self.get(AttributeType.DATA)


def _scan(buf: bytes) -> list[tuple[int, int, int]]:
    """Walk the attribute TLVs once: (type, value start, value end) for each.

    Lengths are checked here so that later slicing can never run off the end;
    values themselves are not looked at except the fixed-size trailers.
    """
    spans: list[tuple[int, int, int]] = []
    n = len(buf)
    pos = HEADER_SIZE
    state = 0  # 0: before integrity, 1: after MESSAGE-INTEGRITY, 2: after -SHA256
    unpack = _TL.unpack_from
    while pos < n:
        if pos + 4 > n:
            raise MalformedMessage("truncated attribute header")
        atype, alen = unpack(buf, pos)
        start = pos + 4
        end = start + alen
        pos = (end + 3) & ~3
        if pos > n:
            raise MalformedMessage("attribute runs past the end of the message")
        if atype in _TRAILERS:
            if atype == _FP:
                if alen != 4:
                    raise MalformedMessage("FINGERPRINT must be 4 bytes")
                if pos != n:
                    raise MalformedMessage("FINGERPRINT must be the last attribute")
            elif atype == _MI:
                if state:
                    continue
                if alen != 20:
                    raise MalformedMessage("MESSAGE-INTEGRITY must be 20 bytes")
                state = 1
            else:
                if state == 2:
                    continue
                if alen < 16 or alen > 32 or alen & 3:
                    raise MalformedMessage("MESSAGE-INTEGRITY-SHA256 length not 16..32, /4")
                state = 2
        elif state:
            continue  # RFC 8489 §14.5/§14.6: ignored after integrity
        spans.append((atype, start, end))
    return spans


def parse(data: bytes | bytearray | memoryview) -> Message:
    """Parse one whole STUN message (one datagram, or one frame of a stream).

    Raises `MalformedMessage` for anything that is not well-formed STUN: bad
    header, length that is not the data's, attribute overrunning, trailers of the
    wrong size or in the wrong place. Attribute values are checked on access.
    """
    buf = bytes(data)
    n = len(buf)
    if n < HEADER_SIZE:
        raise MalformedMessage("shorter than a STUN header")
    mtype, length, cookie = _HEADER.unpack_from(buf)
    if mtype & 0xC000 or cookie != MAGIC_COOKIE:
        raise MalformedMessage("not STUN: leading bits or magic cookie")
    if length + HEADER_SIZE != n or length & 3:
        raise MalformedMessage("length field does not match the data")
    message = Message.__new__(Message)
    message._init(buf, mtype)
    return message


def is_stun(data: bytes | bytearray | memoryview) -> bool:
    """Cheap demultiplexing test (RFC 8489 §5, RFC 7983): could this be STUN?

    First two bits zero, magic cookie, length a multiple of 4 that matches.
    ChannelData starts with 0b01, RTP/QUIC long headers with 0b1x.
    """
    n = len(data)
    return (
        n >= HEADER_SIZE
        and data[0] < 0x40
        and data[4:8] == _COOKIE_BYTES
        and not data[3] & 3
        and (data[2] << 8 | data[3]) == n - HEADER_SIZE
    )


def frame_length(header: bytes | bytearray | memoryview) -> int | None:
    """Total size of the STUN message starting `header` on a stream (RFC 8489 §6.2.2),
    or None while fewer than 4 bytes are known."""
    if len(header) < 4:
        return None
    if header[0] >= 0x40 or header[3] & 3:
        raise MalformedMessage("not a STUN message on the stream")
    return HEADER_SIZE + (header[2] << 8 | header[3])


# -- integrity and fingerprint (RFC 8489 §14.5, §14.6, §14.7) ----------------------


def _append_trailers(
    out: bytearray,
    integrity_key: bytes | None,
    integrity_sha256_key: bytes | None,
    fingerprint: bool,
) -> bytes:
    """Append MI, MI-SHA256, FINGERPRINT in that order; each is computed with the
    length field already counting itself, as the RFC prescribes."""
    if integrity_key is not None:
        _U16.pack_into(out, 2, len(out) + 24 - HEADER_SIZE)
        out += _MI_HEAD + hmac.digest(integrity_key, out, "sha1")
    if integrity_sha256_key is not None:
        _U16.pack_into(out, 2, len(out) + 36 - HEADER_SIZE)
        out += _MI256_HEAD + hmac.digest(integrity_sha256_key, out, "sha256")
    if fingerprint:
        _U16.pack_into(out, 2, len(out) + 8 - HEADER_SIZE)
        out += _FP_HEAD + ((zlib.crc32(out) ^ FINGERPRINT_XOR) & 0xFFFFFFFF).to_bytes(4, "big")
    if len(out) - HEADER_SIZE > _MAX_BODY:
        raise EncodeError("message longer than 65535 bytes")
    return bytes(out)


def encode(
    message: Message,
    *,
    integrity_key: bytes | None = None,
    integrity_sha256_key: bytes | None = None,
    fingerprint: bool = False,
) -> bytes:
    """The message's bytes, with MESSAGE-INTEGRITY (HMAC-SHA1, `integrity_key`),
    MESSAGE-INTEGRITY-SHA256 (`integrity_sha256_key`) and FINGERPRINT appended.

    Attributes already in the message go out unchanged; to re-sign a parsed
    message, encode `message.without_integrity()`.
    """
    if integrity_key is None and integrity_sha256_key is None and not fingerprint:
        return message.raw
    return _append_trailers(
        bytearray(message.raw), integrity_key, integrity_sha256_key, fingerprint
    )


def verify_message_integrity(message: Message, key: bytes) -> bool:
    """True when MESSAGE-INTEGRITY is present and is HMAC-SHA1 of the message up to
    it under `key`. Absent means False: check `AttributeType.MESSAGE_INTEGRITY in
    message` to tell a missing attribute (400/401 challenge) from a wrong one."""
    span = message._span(_MI)
    if span is None:
        return False
    buf, start = message.raw, span[1] - 4
    signed = buf[:2] + _U16.pack(start + 24 - HEADER_SIZE) + buf[4:start]
    return hmac.compare_digest(hmac.digest(key, signed, "sha1"), buf[span[1] : span[2]])


def verify_message_integrity_sha256(message: Message, key: bytes) -> bool:
    """Like `verify_message_integrity` for MESSAGE-INTEGRITY-SHA256, which may be
    truncated to 16..32 bytes (RFC 8489 §14.6)."""
    span = message._span(_MI256)
    if span is None:
        return False
    buf, start, size = message.raw, span[1] - 4, span[2] - span[1]
    signed = buf[:2] + _U16.pack(start + 4 + size - HEADER_SIZE) + buf[4:start]
    mac = hmac.digest(key, signed, "sha256")[:size]
    return hmac.compare_digest(mac, buf[span[1] : span[2]])


def verify_fingerprint(message: Message) -> bool:
    """True when FINGERPRINT is present (it is always last) and matches the CRC-32."""
    span = message._span(_FP)
    if span is None:
        return False
    buf = message.raw
    crc = (zlib.crc32(memoryview(buf)[: span[1] - 4]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return crc.to_bytes(4, "big") == buf[span[1] : span[2]]


def comprehension_required_unknown(message: Message) -> list[int]:
    """Types below 0x8000 this library does not know, for a 420 answer (RFC 8489 §6.3.1)."""
    return [t for t in message.types() if t < 0x8000 and t not in KNOWN_ATTRIBUTE_TYPES]
