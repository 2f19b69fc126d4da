"""The STUN Binding service of a supernode, sans-IO: request bytes in, reply out.

Safe on the open Internet by construction:

- malformed datagrams, responses and indications are dropped without an answer;
- nothing is remembered per source: the only per-source cost is a slot in a
  fixed table of token buckets (`peerline.ratelimit`);
- no amplification: the answer to a request is XOR-MAPPED-ADDRESS (plus the RFC
  5780 addresses when that mode is on, and FINGERPRINT when the request had
  one); optional extras (MAPPED-ADDRESS, SOFTWARE) are added only while the
  answer stays no larger than the request. A client that wants them pads its
  request with PADDING, which costs it as much as it gets back;
- RFC 5780 (CHANGE-REQUEST, RESPONSE-PORT, OTHER-ADDRESS, RESPONSE-ORIGIN) is
  off unless the server was given a second address; without it a request that
  needs it gets 420, as for any unknown comprehension-required attribute.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from peerline.net import Address
from peerline.ratelimit import SourceBuckets
from peerline.stun import (
    AttributeType,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    binding_success,
    comprehension_required_unknown,
    encode_attributes,
    frame_length,
    parse,
    verify_fingerprint,
)
from peerline.stun.attributes import encode_address
from peerline.supernode.config import ServeConfig
from peerline.supernode.transports import Reply, Transport

log = logging.getLogger(__name__)

_RFC5780_ATTRIBUTES = frozenset({AttributeType.CHANGE_REQUEST, AttributeType.RESPONSE_PORT})
_MAPPED_ADDRESS_SIZE = {4: 12, 6: 24}  # attribute header + value, by IP version
_FINGERPRINT_SIZE = 8


@dataclass(frozen=True, slots=True)
class Rfc5780Addresses:
    """The two addresses and two ports of a behaviour-discovery server."""

    primary_ip: str
    alt_ip: str
    port: int
    alt_port: int

    def other_ip(self, ip: str) -> str:
        return self.alt_ip if ip == self.primary_ip else self.primary_ip

    def other_port(self, port: int) -> int:
        return self.alt_port if port == self.port else self.port

    def serves(self, local: Address) -> bool:
        return local[0] in (self.primary_ip, self.alt_ip) and local[1] in (self.port, self.alt_port)


def stun_framer(buffer: bytearray) -> int:
    """Size of the first STUN message on a stream; 0 = need more; -1 = not STUN."""
    try:
        size = frame_length(buffer)
    except MalformedMessage:
        return -1
    if size is None or len(buffer) < size:
        return 0
    return size


class StunService:
    """Answers Binding requests; counts what it did for the live figures."""

    def __init__(self, config: ServeConfig, rfc5780: Rfc5780Addresses | None, now: float) -> None:
        self._rfc5780 = rfc5780
        self._buckets = SourceBuckets(config.rate_limit, now)
        self._allow: Callable[[str, float], bool] = (
            self._buckets.allow if config.rate_limit.enabled else lambda _ip, _now: True
        )
        self._software = encode_attributes([(AttributeType.SOFTWARE, config.software.encode())])
        self.counters: dict[str, int] = {
            "requests": 0,
            "responses": 0,
            "errors_sent": 0,
            "dropped_malformed": 0,
            "dropped_rate_limited": 0,
            "dropped_not_request": 0,
        }

    def handle(
        self, data: bytes, source: Address, local: Address, transport: Transport, now: float
    ) -> Reply | None:
        counters = self.counters
        try:
            request = parse(data)
        except MalformedMessage:
            counters["dropped_malformed"] += 1
            return None
        if request.message_class is not MessageClass.REQUEST:
            counters["dropped_not_request"] += 1
            return None
        if not self._allow(source[0], now):
            counters["dropped_rate_limited"] += 1
            return None
        counters["requests"] += 1
        if request.method == Method.BINDING and len(data) == 20 and self._rfc5780 is None:
            # The common case, answered without looking further: no attributes at all.
            counters["responses"] += 1
            return Reply(binding_success(request.transaction_id, source), local, source)
        if AttributeType.FINGERPRINT in request and not verify_fingerprint(request):
            counters["dropped_malformed"] += 1
            return None
        if request.method != Method.BINDING:
            return self._error(request, source, local, ErrorCode.BAD_REQUEST, "Unsupported method")
        try:
            return self._binding(request, len(data), source, local, transport)
        except MalformedMessage:  # an attribute we need could not be read
            return self._error(request, source, local, ErrorCode.BAD_REQUEST, "Malformed attribute")

    def _unknown(self, request: Message) -> list[int]:
        unknown = comprehension_required_unknown(request)
        if self._rfc5780 is None:
            unknown += [kind for kind in request.types() if kind in _RFC5780_ATTRIBUTES]
        return unknown

    def _binding(
        self,
        request: Message,
        request_size: int,
        source: Address,
        local: Address,
        transport: Transport,
    ) -> Reply:
        unknown = self._unknown(request)
        if unknown:
            response = (
                MessageBuilder.response_to(request, error=True)
                .add_error_code(ErrorCode.UNKNOWN_ATTRIBUTE)
                .add_unknown_attributes(unknown)
                .encode(fingerprint=AttributeType.FINGERPRINT in request)
            )
            self.counters["errors_sent"] += 1
            return Reply(response, local, source)
        sender, destination = local, source
        extra = b""
        rfc5780 = self._rfc5780
        if rfc5780 is not None and rfc5780.serves(local):
            change = request.change_request
            if change is not None and (change.change_ip or change.change_port):
                if transport is not Transport.UDP:
                    return self._error(
                        request, source, local, ErrorCode.BAD_REQUEST, "CHANGE-REQUEST needs UDP"
                    )
                sender = (
                    rfc5780.other_ip(local[0]) if change.change_ip else local[0],
                    rfc5780.other_port(local[1]) if change.change_port else local[1],
                )
            response_port = request.response_port
            if response_port is not None and transport is Transport.UDP:
                destination = (source[0], response_port)
            other = (rfc5780.other_ip(local[0]), rfc5780.other_port(local[1]))
            extra = encode_attributes(
                [
                    (AttributeType.RESPONSE_ORIGIN, encode_address(sender)),
                    (AttributeType.OTHER_ADDRESS, encode_address(other)),
                ]
            )
        fingerprint = AttributeType.FINGERPRINT in request
        mapped_size = _MAPPED_ADDRESS_SIZE[6 if ":" in source[0] else 4]
        size = 20 + mapped_size + len(extra) + _FINGERPRINT_SIZE * fingerprint
        if size + mapped_size <= request_size:
            extra += encode_attributes([(AttributeType.MAPPED_ADDRESS, encode_address(source))])
            size += mapped_size
        if size + len(self._software) <= request_size:
            extra += self._software
        self.counters["responses"] += 1
        return Reply(
            binding_success(request.transaction_id, source, extra=extra, fingerprint=fingerprint),
            sender,
            destination,
        )

    def _error(
        self, request: Message, source: Address, local: Address, code: ErrorCode, reason: str
    ) -> Reply:
        self.counters["errors_sent"] += 1
        response = (
            MessageBuilder.response_to(request, error=True)
            .add_error_code(code, reason)
            .encode(fingerprint=AttributeType.FINGERPRINT in request)
        )
        return Reply(response, local, source)
