"""Building messages: a small builder, and a fast path for Binding success responses.

The builder collects TLVs and encodes once; the fast path skips even that and
packs a Binding success response with XOR-MAPPED-ADDRESS directly, because that
is the one message a public STUN server sends millions of times.
"""

from __future__ import annotations

import secrets
import struct

from peerline.stun import attributes as av
from peerline.stun.constants import (
    MAGIC_COOKIE,
    AttributeType,
    MessageClass,
    Method,
)
from peerline.stun.errors import EncodeError
from peerline.stun.message import Message, _append_trailers, _message_type, _tlv, parse

_HEAD_TAIL = struct.Struct(">HHI")
_XOR_MAPPED_V4_HEAD = struct.pack(">HH", AttributeType.XOR_MAPPED_ADDRESS, 8)
_XOR_MAPPED_V6_HEAD = struct.pack(">HH", AttributeType.XOR_MAPPED_ADDRESS, 20)
_BINDING_SUCCESS = _message_type(Method.BINDING, MessageClass.SUCCESS)


def new_transaction_id() -> bytes:
    """12 cryptographically random bytes (RFC 8489 §5 requires unpredictability)."""
    return secrets.token_bytes(12)


class MessageBuilder:
    """Collects attributes in order, then builds a `Message` or encodes it with
    MESSAGE-INTEGRITY / -SHA256 / FINGERPRINT appended."""

    __slots__ = ("_parts", "message_class", "method", "transaction_id")

    def __init__(
        self, method: int, message_class: MessageClass, transaction_id: bytes | None = None
    ) -> None:
        self.method = method
        self.message_class = message_class
        self.transaction_id = new_transaction_id() if transaction_id is None else transaction_id
        if len(self.transaction_id) != 12:
            raise EncodeError("transaction id must be 12 bytes")
        self._parts: list[bytes] = []

    @classmethod
    def response_to(cls, request: Message, *, error: bool = False) -> MessageBuilder:
        """A success (or error) response: same method and transaction id as `request`."""
        klass = MessageClass.ERROR if error else MessageClass.SUCCESS
        return cls(request.method, klass, request.transaction_id)

    def add(self, attr_type: int, value: bytes = b"") -> MessageBuilder:
        """Any attribute as raw value bytes (padding is added with zeros)."""
        self._parts.append(_tlv(attr_type, value))
        return self

    def add_encoded(self, tlvs: bytes) -> MessageBuilder:
        """Attributes already TLV-encoded (see `encode_attributes`)."""
        if len(tlvs) % 4:
            raise EncodeError("encoded attributes must be padded to 4 bytes")
        self._parts.append(tlvs)
        return self

    def add_address(self, attr_type: int, address: tuple[str, int]) -> MessageBuilder:
        """MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS."""
        return self.add(attr_type, av.encode_address(address))

    def add_xor_address(self, attr_type: int, address: tuple[str, int]) -> MessageBuilder:
        """XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS."""
        return self.add(attr_type, av.encode_xor_address(address, self.transaction_id))

    def add_text(self, attr_type: int, text: str) -> MessageBuilder:
        """USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN as UTF-8."""
        return self.add(attr_type, text.encode("utf-8"))

    def add_error_code(self, code: int, reason: str | None = None) -> MessageBuilder:
        """ERROR-CODE; the RFC's reason phrase when `reason` is None."""
        return self.add(AttributeType.ERROR_CODE, av.encode_error_code(code, reason))

    def add_unknown_attributes(self, types: list[int]) -> MessageBuilder:
        """UNKNOWN-ATTRIBUTES, for a 420 response."""
        return self.add(AttributeType.UNKNOWN_ATTRIBUTES, av.encode_unknown_attributes(types))

    def add_change_request(self, request: av.ChangeRequest) -> MessageBuilder:
        """CHANGE-REQUEST (RFC 5780)."""
        return self.add(AttributeType.CHANGE_REQUEST, av.encode_change_request(request))

    def add_u32(self, attr_type: int, number: int) -> MessageBuilder:
        """PRIORITY, LIFETIME, CONNECTION-ID, CACHE-TIMEOUT."""
        return self.add(attr_type, av.encode_u32(number))

    def add_u64(self, attr_type: int, number: int) -> MessageBuilder:
        """ICE-CONTROLLED, ICE-CONTROLLING, RESERVATION-TOKEN."""
        return self.add(attr_type, av.encode_u64(number))

    def add_port(self, attr_type: int, port: int) -> MessageBuilder:
        """RESPONSE-PORT, CHANNEL-NUMBER."""
        return self.add(attr_type, av.encode_port(port))

    def add_password_algorithms(self, entries: list[av.PasswordAlgorithmEntry]) -> MessageBuilder:
        """PASSWORD-ALGORITHMS, the server's offer in order of preference."""
        return self.add(AttributeType.PASSWORD_ALGORITHMS, av.encode_password_algorithms(entries))

    def add_password_algorithm(self, entry: av.PasswordAlgorithmEntry) -> MessageBuilder:
        """PASSWORD-ALGORITHM, the client's choice."""
        return self.add(AttributeType.PASSWORD_ALGORITHM, av.encode_password_algorithm(entry))

    def _bytes(self) -> bytearray:
        body = b"".join(self._parts)
        if len(body) > 0xFFFC:
            raise EncodeError("message longer than 65535 bytes")
        mtype = _message_type(self.method, self.message_class)
        out = bytearray(_HEAD_TAIL.pack(mtype, len(body), MAGIC_COOKIE))
        out += self.transaction_id
        out += body
        return out

    def build(self) -> Message:
        """The message without integrity or fingerprint."""
        return parse(self._bytes())

    def encode(
        self,
        *,
        integrity_key: bytes | None = None,
        integrity_sha256_key: bytes | None = None,
        fingerprint: bool = False,
    ) -> bytes:
        """Wire bytes, with the requested trailers in RFC order."""
        return _append_trailers(self._bytes(), integrity_key, integrity_sha256_key, fingerprint)


def binding_success(
    transaction_id: bytes,
    address: tuple[str, int],
    *,
    extra: bytes = b"",
    integrity_key: bytes | None = None,
    fingerprint: bool = False,
) -> bytes:
    """Binding success response with XOR-MAPPED-ADDRESS of `address`, then `extra`
    (pre-encoded TLVs such as SOFTWARE, RESPONSE-ORIGIN, OTHER-ADDRESS), then the
    optional integrity and fingerprint: the server's hot path, in one pack."""
    if len(transaction_id) != 12 or len(extra) % 4:
        raise EncodeError("bad transaction id or unpadded extra attributes")
    value = av.encode_xor_address(address, transaction_id)
    head = _XOR_MAPPED_V4_HEAD if len(value) == 8 else _XOR_MAPPED_V6_HEAD
    length = 4 + len(value) + len(extra)
    out = (
        _HEAD_TAIL.pack(_BINDING_SUCCESS, length, MAGIC_COOKIE)
        + transaction_id
        + head
        + value
        + extra
    )
    if integrity_key is None and not fingerprint:
        return out
    return _append_trailers(bytearray(out), integrity_key, None, fingerprint)
