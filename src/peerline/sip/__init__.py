"""The SIP core, with no I/O: messages, URIs, framing, transactions, digest auth.

Transports, the registrar and the proxy are built on this package; they feed it
bytes and the current time and send what it hands back.
"""

from peerline.sip.errors import MalformedMessage, TransactionError
from peerline.sip.headers import Headers, canonical_name
from peerline.sip.message import (
    Message,
    Request,
    Response,
    error_response,
    parse_message,
)
from peerline.sip.methods import Method, StatusClass, Transport
from peerline.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "AbsoluteUri",
    "Headers",
    "MalformedMessage",
    "Message",
    "Method",
    "Request",
    "Response",
    "SipUri",
    "StatusClass",
    "TelUri",
    "TransactionError",
    "Transport",
    "Uri",
    "canonical_name",
    "error_response",
    "parse_message",
    "parse_uri",
]
