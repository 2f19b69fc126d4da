"""SIP Outbound pieces (RFC 5626): flow tokens, and keepalives on the SIP UDP port.

A flow token is the flow itself, packed, with an HMAC under the server's
secret, written into the user part of our Record-Route and Path URIs. When a
request comes back with that URI in its Route, the proxy reads the flow out of
it and sends the request over that very flow, the only way into a phone
behind a NAT. A token that does not verify is not ours: it routes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import struct

from peerline.sip.flow import Flow
from peerline.sip.methods import Transport
from peerline.stun import MalformedMessage as StunMalformed
from peerline.stun import MessageClass, binding_success, parse
from peerline.stun import Method as StunMethod

_TRANSPORTS = list(Transport)
_MAC = 10
_CACHED = 4096
_HEAD = struct.Struct(">BBHHQ")  # transport, ip version, local port, remote port, connection


class FlowTokens:
    """Encodes flows into URI-safe tokens and back, refusing forged ones."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the flow token secret needs at least 16 bytes")
        self._secret = secret
        # The same few flows are written and read with every message of a dialog;
        # an HMAC each time is most of the cost. Bounded: cleared when full.
        self._encoded: dict[Flow, str] = {}
        self._decoded: dict[str, Flow | None] = {}

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, b"flow\0" + body, hashlib.sha256).digest()[:_MAC]

    def encode(self, flow: Flow) -> str:
        token = self._encoded.get(flow)
        if token is None:
            if len(self._encoded) >= _CACHED:
                self._encoded.clear()
            token = self._encoded[flow] = self._encode(flow)
        return token

    def decode(self, token: str) -> Flow | None:
        """The flow in `token`, or None if it is not a token this server made."""
        if token in self._decoded:
            return self._decoded[token]
        if len(self._decoded) >= _CACHED:
            self._decoded.clear()
        flow = self._decoded[token] = self._decode(token)
        return flow

    def _encode(self, flow: Flow) -> str:
        local, remote = ipaddress.ip_address(flow.local[0]), ipaddress.ip_address(flow.remote[0])
        body = (
            _HEAD.pack(
                _TRANSPORTS.index(flow.transport),
                local.version,
                flow.local[1],
                flow.remote[1],
                flow.connection,
            )
            + local.packed
            + remote.packed
        )
        return base64.urlsafe_b64encode(self._mac(body) + body).rstrip(b"=").decode("ascii")

    def _decode(self, token: str) -> Flow | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        mac, body = raw[:_MAC], raw[_MAC:]
        if len(body) < _HEAD.size or not hmac.compare_digest(mac, self._mac(body)):
            return None
        kind, version, local_port, remote_port, connection = _HEAD.unpack_from(body)
        size = 4 if version == 4 else 16
        addresses = body[_HEAD.size :]
        if len(addresses) != 2 * size or kind >= len(_TRANSPORTS):
            return None
        local_ip = str(ipaddress.ip_address(addresses[:size]))
        remote_ip = str(ipaddress.ip_address(addresses[size:]))
        return Flow(_TRANSPORTS[kind], (local_ip, local_port), (remote_ip, remote_port), connection)


def is_stun(data: bytes) -> bool:
    """RFC 7983 demultiplexing: STUN starts with 0 or 1, SIP with a letter or CR."""
    return bool(data) and data[0] < 4


def stun_keepalive_answer(data: bytes, source: tuple[str, int]) -> bytes | None:
    """The Binding success for a keepalive request on the SIP UDP port (RFC 5626
    §4.4.2), or None for anything that is not a plain Binding request."""
    try:
        request = parse(data)
    except StunMalformed:
        return None
    if request.message_class is not MessageClass.REQUEST or request.method != StunMethod.BINDING:
        return None
    return binding_success(request.transaction_id, source)
