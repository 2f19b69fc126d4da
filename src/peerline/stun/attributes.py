"""Attribute value codecs: bytes in, typed values out, and back.

Each decoder takes the value of one attribute (without its type/length header
and without padding) and raises only `MalformedMessage`; each encoder returns the
value bytes and raises `EncodeError` for arguments the wire cannot carry. They are
plain functions so `Message` can decode lazily, only what a caller asks for.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from peerline.stun.constants import MAGIC_COOKIE, AddressFamily, ErrorCode, PasswordAlgorithm
from peerline.stun.errors import EncodeError, MalformedMessage

_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_V4 = struct.Struct(">BBHI")
_V6_HEAD = struct.Struct(">BBH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U16_PAIR = struct.Struct(">HH")
_MAX_REASON_BYTES = 763  # RFC 8489 §14.8: fewer than 128 characters, at most 763 bytes


class TransportAddress(NamedTuple):
    """An IP address (text form, no scope) and a port, as asyncio hands them out.

    A tuple so that `("192.0.2.1", 3478) == TransportAddress("192.0.2.1", 3478)`
    and the first two fields of a socket address unpack into it directly.
    """

    ip: str
    port: int

    @property
    def family(self) -> AddressFamily:
        """IPV6 when the text form has a colon, else IPV4."""
        return AddressFamily.IPV6 if ":" in self.ip else AddressFamily.IPV4


class ErrorCodeValue(NamedTuple):
    """ERROR-CODE decoded: `code` is an `ErrorCode` when known, else the raw int."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """RFC 5780 §7.2 CHANGE-REQUEST: answer from the other IP and/or the other port."""

    change_ip: bool = False
    change_port: bool = False


class PasswordAlgorithmEntry(NamedTuple):
    """One (algorithm, parameters) pair of PASSWORD-ALGORITHM(S) (RFC 8489 §14.11-12)."""

    algorithm: int
    parameters: bytes = b""


# -- addresses (RFC 8489 §14.1, §14.2) -------------------------------------------


def _pack_ip(ip: str) -> tuple[int, bytes]:
    """Family and packed bytes of `ip`; an IPv4-mapped IPv6 address becomes IPv4.

    Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; the peer itself is
    IPv4, so that is the family it must see in its mapped address.
    """
    ip = ip.partition("%")[0]
    v4 = ":" not in ip
    try:
        packed = socket.inet_pton(socket.AF_INET if v4 else socket.AF_INET6, ip)
    except (OSError, ValueError) as exc:
        raise EncodeError(f"not an IP address: {ip!r}") from exc
    if v4:
        return 1, packed
    if packed[:12] == _V4_MAPPED_PREFIX:
        return 1, packed[12:]
    return 2, packed


_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def _check_port(port: int) -> None:
    if not 0 <= port <= 0xFFFF:
        raise EncodeError(f"port out of range: {port}")


def encode_address(address: tuple[str, int]) -> bytes:
    """MAPPED-ADDRESS-style value (also ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS)."""
    ip, port = address[0], address[1]
    _check_port(port)
    family, packed = _pack_ip(ip)
    return _V6_HEAD.pack(0, family, port) + packed


def decode_address(value: bytes) -> TransportAddress:
    """Inverse of `encode_address`."""
    n = len(value)
    if n == 8 and value[1] == 1:
        return TransportAddress(socket.inet_ntoa(value[4:8]), _U16.unpack_from(value, 2)[0])
    if n == 20 and value[1] == 2:
        ip = socket.inet_ntop(socket.AF_INET6, value[4:20])
        return TransportAddress(ip, _U16.unpack_from(value, 2)[0])
    raise MalformedMessage("bad address attribute")


def encode_xor_address(address: tuple[str, int], transaction_id: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS-style value: port XOR the cookie's top 16 bits, address
    XOR the cookie (IPv4) or the cookie followed by the transaction id (IPv6)."""
    ip, port = address[0], address[1]
    _check_port(port)
    family, packed = _pack_ip(ip)
    if family == 1:
        return _V4.pack(0, 1, port ^ 0x2112, _U32.unpack(packed)[0] ^ MAGIC_COOKIE)
    mask = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
    xored = (int.from_bytes(packed, "big") ^ mask).to_bytes(16, "big")
    return _V6_HEAD.pack(0, 2, port ^ 0x2112) + xored


def decode_xor_address(value: bytes, transaction_id: bytes) -> TransportAddress:
    """Inverse of `encode_xor_address`."""
    n = len(value)
    if n == 8 and value[1] == 1:
        _, _, xport, xip = _V4.unpack(value)
        ip = socket.inet_ntoa(_U32.pack(xip ^ MAGIC_COOKIE))
        return TransportAddress(ip, xport ^ 0x2112)
    if n == 20 and value[1] == 2:
        mask = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
        packed = (int.from_bytes(value[4:20], "big") ^ mask).to_bytes(16, "big")
        ip = socket.inet_ntop(socket.AF_INET6, packed)
        return TransportAddress(ip, _U16.unpack_from(value, 2)[0] ^ 0x2112)
    raise MalformedMessage("bad XOR address attribute")


# -- ERROR-CODE, UNKNOWN-ATTRIBUTES (RFC 8489 §14.8, §14.9) ------------------------


def encode_error_code(code: int, reason: str | None = None) -> bytes:
    """Class (hundreds) and number (rest) after two zero bytes, then the reason.

    Without `reason`, the RFC's phrase for a known code is used.
    """
    if not 300 <= code <= 699:
        raise EncodeError(f"error code out of range 300-699: {code}")
    if reason is None:
        reason = ErrorCode(code).reason if code in _ERROR_CODES else ""
    raw = reason.encode("utf-8")
    if len(raw) > _MAX_REASON_BYTES:
        raise EncodeError("error reason longer than 763 bytes")
    return bytes((0, 0, code // 100, code % 100)) + raw


_ERROR_CODES = frozenset(int(c) for c in ErrorCode)


def decode_error_code(value: bytes) -> ErrorCodeValue:
    """Inverse of `encode_error_code`; a reason that is not UTF-8 is malformed."""
    if len(value) < 4:
        raise MalformedMessage("ERROR-CODE shorter than 4 bytes")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise MalformedMessage("ERROR-CODE class or number out of range")
    code = klass * 100 + number
    return ErrorCodeValue(ErrorCode(code) if code in _ERROR_CODES else code, decode_text(value[4:]))


def encode_unknown_attributes(types: list[int]) -> bytes:
    """A list of 16-bit attribute types (padding is the TLV's, RFC 8489 §14.9)."""
    try:
        return struct.pack(f">{len(types)}H", *types)
    except struct.error as exc:
        raise EncodeError("attribute type out of range") from exc


def decode_unknown_attributes(value: bytes) -> list[int]:
    """Inverse of `encode_unknown_attributes`."""
    if len(value) % 2:
        raise MalformedMessage("UNKNOWN-ATTRIBUTES of odd length")
    return list(struct.unpack(f">{len(value) // 2}H", value))


# -- small fixed-size values ----------------------------------------------------


def encode_change_request(request: ChangeRequest) -> bytes:
    """RFC 5780 §7.2: flag A (0x4) changes the IP, flag B (0x2) the port."""
    return _U32.pack((4 if request.change_ip else 0) | (2 if request.change_port else 0))


def decode_change_request(value: bytes) -> ChangeRequest:
    """Inverse of `encode_change_request`; other bits are ignored."""
    flags = decode_u32(value)
    return ChangeRequest(change_ip=bool(flags & 4), change_port=bool(flags & 2))


def encode_u32(number: int) -> bytes:
    """PRIORITY, LIFETIME, CONNECTION-ID, CACHE-TIMEOUT."""
    if not 0 <= number <= 0xFFFFFFFF:
        raise EncodeError(f"does not fit 32 bits: {number}")
    return _U32.pack(number)


def decode_u32(value: bytes) -> int:
    """Inverse of `encode_u32`."""
    if len(value) != 4:
        raise MalformedMessage("32-bit attribute of wrong length")
    return int(_U32.unpack(value)[0])


def encode_u64(number: int) -> bytes:
    """ICE-CONTROLLED, ICE-CONTROLLING tie-breakers and RESERVATION-TOKEN."""
    if not 0 <= number <= 0xFFFFFFFFFFFFFFFF:
        raise EncodeError(f"does not fit 64 bits: {number}")
    return _U64.pack(number)


def decode_u64(value: bytes) -> int:
    """Inverse of `encode_u64`."""
    if len(value) != 8:
        raise MalformedMessage("64-bit attribute of wrong length")
    return int(_U64.unpack(value)[0])


def encode_port(port: int) -> bytes:
    """RESPONSE-PORT (RFC 5780 §7.5) and CHANNEL-NUMBER: 16 bits then 16 reserved."""
    _check_port(port)
    return _U16_PAIR.pack(port, 0)


def decode_port(value: bytes) -> int:
    """Inverse of `encode_port`."""
    if len(value) != 4:
        raise MalformedMessage("16-bit attribute of wrong length")
    return int(_U16.unpack_from(value)[0])


def encode_byte(number: int) -> bytes:
    """REQUESTED-TRANSPORT (protocol) and REQUESTED-ADDRESS-FAMILY: a byte, 3 reserved."""
    if not 0 <= number <= 0xFF:
        raise EncodeError(f"does not fit 8 bits: {number}")
    return bytes((number, 0, 0, 0))


def decode_byte(value: bytes) -> int:
    """Inverse of `encode_byte`."""
    if len(value) != 4:
        raise MalformedMessage("8-bit attribute of wrong length")
    return value[0]


# -- text (USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN) -------------------


def decode_text(value: bytes) -> str:
    """UTF-8 text; invalid UTF-8 is malformed, never a UnicodeDecodeError."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage("attribute is not valid UTF-8") from exc


# -- PASSWORD-ALGORITHM(S) (RFC 8489 §14.11, §14.12) -----------------------------


def encode_password_algorithm(entry: PasswordAlgorithmEntry) -> bytes:
    """Algorithm, parameters length, parameters padded to 4 bytes."""
    params = entry.parameters
    if not 0 <= entry.algorithm <= 0xFFFF or len(params) > 0xFFFF:
        raise EncodeError("password algorithm or parameters out of range")
    return _U16_PAIR.pack(entry.algorithm, len(params)) + params + bytes(-len(params) % 4)


def encode_password_algorithms(entries: list[PasswordAlgorithmEntry]) -> bytes:
    """The PASSWORD-ALGORITHMS list, in order of preference."""
    return b"".join(encode_password_algorithm(e) for e in entries)


def decode_password_algorithms(value: bytes) -> list[PasswordAlgorithmEntry]:
    """Inverse of `encode_password_algorithms`."""
    entries: list[PasswordAlgorithmEntry] = []
    pos, n = 0, len(value)
    while pos < n:
        if pos + 4 > n:
            raise MalformedMessage("truncated password algorithm")
        algorithm, length = _U16_PAIR.unpack_from(value, pos)
        end = pos + 4 + length
        if end > n:
            raise MalformedMessage("password algorithm parameters overrun")
        known = algorithm in _ALGORITHMS
        entries.append(
            PasswordAlgorithmEntry(
                PasswordAlgorithm(algorithm) if known else algorithm, bytes(value[pos + 4 : end])
            )
        )
        pos = end + (-length % 4)
    return entries


_ALGORITHMS = frozenset(int(a) for a in PasswordAlgorithm)


def decode_password_algorithm(value: bytes) -> PasswordAlgorithmEntry:
    """PASSWORD-ALGORITHM holds exactly one entry."""
    entries = decode_password_algorithms(value)
    if len(entries) != 1:
        raise MalformedMessage("PASSWORD-ALGORITHM must hold one algorithm")
    return entries[0]
