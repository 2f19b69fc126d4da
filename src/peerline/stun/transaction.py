"""The STUN client transaction (RFC 8489 §6.2), sans I/O.

It is fed the current time and the responses the adapter received, and answers
with what to send and when to wake it up. Over UDP it retransmits after RTO,
2·RTO, 4·RTO ... (Rc sends in all), then waits Rm·RTO more; over TCP/TLS it sends
once and gives up after Ti.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from peerline.stun.constants import HEADER_SIZE, MessageClass
from peerline.stun.errors import EncodeError, MalformedMessage
from peerline.stun.message import Message, comprehension_required_unknown, parse


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionConfig:
    """RFC 8489 §6.2.1 timers. `rto` is the initial retransmission timeout (it should
    come from the RTT estimate of earlier transactions when there is one)."""

    rto: float = 0.5
    rc: int = 7
    rm: int = 16
    ti: float = 39.5

    def __post_init__(self) -> None:
        if not self.rto > 0 or not self.ti > 0 or self.rc < 1 or self.rm < 1:
            raise ValueError("rto and ti must be > 0, rc and rm >= 1")


class Transport(Enum):
    """UDP needs retransmissions; TCP and TLS deliver or fail on their own."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def reliable(self) -> bool:
        """True for the stream transports."""
        return self is not Transport.UDP


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """The transaction ended with a success or error response.

    `rtt` is measured only when no retransmission happened (Karn's rule: with
    retransmissions one cannot tell which send was answered).
    """

    message: Message
    rtt: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut:
    """No response: after the last of `sends` transmissions, the final wait passed."""

    sends: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """A response arrived but cannot be used (RFC 8489 §6.3.1: it carries
    comprehension-required attributes we do not understand)."""

    message: Message
    unknown_attributes: tuple[int, ...]


TransactionResult = ResponseReceived | TimedOut | Failed


class ClientTransaction:
    """One request and its retransmissions; the result ends it.

    Drive it with `datagrams_to_send(now)` after creation and after each
    `handle_timer(now)`; arm a timer for `get_timer()`; pass every response whose
    transaction id matches to `handle_response(message, now)`.
    """

    def __init__(
        self,
        request: bytes,
        *,
        transport: Transport,
        now: float,
        config: TransactionConfig | None = None,
    ) -> None:
        message = parse(request)
        if message.message_class is not MessageClass.REQUEST:
            raise EncodeError("a client transaction sends a request")
        self.config = config or TransactionConfig()
        self.transport = transport
        self.request = request
        self._method = message.method
        self.transaction_id = message.transaction_id
        self.result: TransactionResult | None = None
        self._started = now
        self._sends = 0
        self._pending = 1
        self._rto = self.config.rto
        self._deadline: float | None = now  # the first send is due at once

    @property
    def done(self) -> bool:
        """True once `result` is set; nothing more will be sent."""
        return self.result is not None

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """The request once per transmission due (for TCP/TLS: exactly once)."""
        if self._pending == 0 or self.result is not None:
            return []
        self._pending = 0
        self._sends += 1
        if self.transport.reliable:
            self._deadline = now + self.config.ti
        elif self._sends < self.config.rc:
            self._deadline = now + self._rto
            self._rto *= 2
        else:
            self._deadline = now + self.config.rm * self.config.rto
        return [self.request]

    def get_timer(self) -> float | None:
        """When to call `handle_timer` next, or None when finished."""
        return None if self.result is not None else self._deadline

    def handle_timer(self, now: float) -> None:
        """Time passed: queue a retransmission, or end the transaction with TimedOut."""
        if self.result is not None or self._deadline is None or now < self._deadline:
            return
        if self._pending:
            return  # the due send has not been collected yet
        if self.transport.reliable or self._sends >= self.config.rc:
            self.result = TimedOut(sends=self._sends)
            self._deadline = None
            return
        self._pending = 1
        self._deadline = now

    def handle_response(self, message: Message, now: float) -> bool:
        """Offer a received message; True when it belongs to this transaction and ended it.

        Messages with another transaction id, another method, or a class that is
        not a response are ignored (False), as are responses after the end.
        """
        if (
            self.result is not None
            or message.transaction_id != self.transaction_id
            or message.method != self._method
            or message.message_class not in (MessageClass.SUCCESS, MessageClass.ERROR)
        ):
            return False
        unknown = comprehension_required_unknown(message)
        if unknown:
            self.result = Failed(message=message, unknown_attributes=tuple(unknown))
        else:
            rtt = now - self._started if self._sends == 1 else None
            self.result = ResponseReceived(message=message, rtt=rtt)
        self._deadline = None
        return True

    def handle_data(self, data: bytes, now: float) -> bool:
        """`handle_response` for raw bytes; False for anything that does not parse."""
        if len(data) < HEADER_SIZE or data[8:20] != self.transaction_id:
            return False
        try:
            message = parse(data)
        except MalformedMessage:
            return False
        return self.handle_response(message, now)
