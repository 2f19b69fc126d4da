"""STUN wire constants: methods, classes, attribute types and error codes.

Values come from the IANA STUN registries as filled by RFC 8489 (STUN), RFC 5780
(behaviour discovery), RFC 8445 (ICE), RFC 8656 (TURN) and RFC 6062 (TURN-TCP).
"""

from enum import IntEnum

MAGIC_COOKIE = 0x2112A442
"""RFC 8489 §5: fixed value in every message; also the XOR key for addresses."""

FINGERPRINT_XOR = 0x5354554E
"""RFC 8489 §14.7: CRC-32 is XOR-ed with this ("STUN") before it is sent."""

HEADER_SIZE = 20


class Method(IntEnum):
    """The 12-bit method of a message (RFC 8489 §18.4 registry)."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class MessageClass(IntEnum):
    """The 2-bit class (C1 C0) of a message (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class AttributeType(IntEnum):
    """Attribute types; below 0x8000 a receiver must understand them (RFC 8489 §14)."""

    MAPPED_ADDRESS = 0x0001
    CHANGE_REQUEST = 0x0003  # RFC 5780 §7.2
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C  # RFC 8656
    LIFETIME = 0x000D  # RFC 8656
    XOR_PEER_ADDRESS = 0x0012  # RFC 8656
    DATA = 0x0013  # RFC 8656
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016  # RFC 8656
    REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656
    EVEN_PORT = 0x0018  # RFC 8656
    REQUESTED_TRANSPORT = 0x0019  # RFC 8656
    DONT_FRAGMENT = 0x001A  # RFC 8656
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022  # RFC 8656
    PRIORITY = 0x0024  # RFC 8445
    USE_CANDIDATE = 0x0025  # RFC 8445
    PADDING = 0x0026  # RFC 5780
    RESPONSE_PORT = 0x0027  # RFC 5780
    CONNECTION_ID = 0x002A  # RFC 6062
    ADDITIONAL_ADDRESS_FAMILY = 0x8000  # RFC 8656
    ADDRESS_ERROR_CODE = 0x8001  # RFC 8656
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004  # RFC 8656
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    CACHE_TIMEOUT = 0x8027  # RFC 5780
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029  # RFC 8445
    ICE_CONTROLLING = 0x802A  # RFC 8445
    RESPONSE_ORIGIN = 0x802B  # RFC 5780
    OTHER_ADDRESS = 0x802C  # RFC 5780

    @property
    def comprehension_required(self) -> bool:
        """RFC 8489 §14: types 0x0000-0x7FFF must be understood by the receiver."""
        return self.value < 0x8000


KNOWN_ATTRIBUTE_TYPES: frozenset[int] = frozenset(int(t) for t in AttributeType)


class ErrorCode(IntEnum):
    """ERROR-CODE values (RFC 8489 §14.8, RFC 8656 §19, RFC 6062, RFC 8445)."""

    TRY_ALTERNATE = 300
    BAD_REQUEST = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    MOBILITY_FORBIDDEN = 405
    UNKNOWN_ATTRIBUTE = 420
    ALLOCATION_MISMATCH = 437
    STALE_NONCE = 438
    ADDRESS_FAMILY_NOT_SUPPORTED = 440
    WRONG_CREDENTIALS = 441
    UNSUPPORTED_TRANSPORT_PROTOCOL = 442
    PEER_ADDRESS_FAMILY_MISMATCH = 443
    CONNECTION_ALREADY_EXISTS = 446
    CONNECTION_TIMEOUT_OR_FAILURE = 447
    ALLOCATION_QUOTA_REACHED = 486
    ROLE_CONFLICT = 487
    SERVER_ERROR = 500
    INSUFFICIENT_CAPACITY = 508

    @property
    def reason(self) -> str:
        """The reason phrase the RFCs suggest for this code."""
        return _REASONS[self.value]


_REASONS = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    405: "Mobility Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


class PasswordAlgorithm(IntEnum):
    """PASSWORD-ALGORITHM values (RFC 8489 §18.5): which hash makes the long-term key."""

    MD5 = 0x0001
    SHA256 = 0x0002


class AddressFamily(IntEnum):
    """The family byte of address attributes (RFC 8489 §14.1)."""

    IPV4 = 0x01
    IPV6 = 0x02
