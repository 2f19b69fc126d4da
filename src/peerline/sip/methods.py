"""SIP request methods and response status classes."""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum


class Method(StrEnum):
    """The methods peerline knows. Any other token is a legal extension method:
    messages carry it as a plain `str`, and it never equals one of these
    (methods are case-sensitive: `RE%47IST%45R` is not REGISTER)."""

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    PRACK = "PRACK"
    SUBSCRIBE = "SUBSCRIBE"
    NOTIFY = "NOTIFY"
    PUBLISH = "PUBLISH"
    INFO = "INFO"
    REFER = "REFER"
    MESSAGE = "MESSAGE"
    UPDATE = "UPDATE"


_BY_NAME = {m.value: m for m in Method}


def as_method(token: str) -> str:
    """The `Method` member for a known method token, else the token itself."""
    return _BY_NAME.get(token, token)


class StatusClass(IntEnum):
    """The first digit of a status code (RFC 3261 §21)."""

    PROVISIONAL = 1
    SUCCESS = 2
    REDIRECTION = 3
    CLIENT_ERROR = 4
    SERVER_ERROR = 5
    GLOBAL_FAILURE = 6

    @classmethod
    def of(cls, status: int) -> StatusClass:
        return cls(status // 100)


class Transport(Enum):
    """How a message travels, which decides retransmission timers (RFC 3261 §17)."""

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"
    SCTP = "SCTP"
    WS = "WS"
    WSS = "WSS"

    @property
    def reliable(self) -> bool:
        return self is not Transport.UDP
