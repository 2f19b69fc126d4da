"""The SIP core, with no I/O: messages, URIs, framing, transactions, digest auth.

Transports, the registrar and the proxy are built on this package; they feed it
bytes and the current time and send what it hands back.
"""

from peerline.sip.digest import DigestServer, Verdict
from peerline.sip.errors import MalformedMessage, TransactionError
from peerline.sip.framing import StreamFramer
from peerline.sip.headers import Headers, canonical_name
from peerline.sip.matching import TransactionKey, client_key, server_key
from peerline.sip.message import (
    Message,
    Request,
    Response,
    error_response,
    parse_message,
)
from peerline.sip.methods import Method, StatusClass, Transport
from peerline.sip.transaction import TimerConfig, client_transaction, server_transaction
from peerline.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "AbsoluteUri",
    "DigestServer",
    "Headers",
    "MalformedMessage",
    "Message",
    "Method",
    "Request",
    "Response",
    "SipUri",
    "StatusClass",
    "StreamFramer",
    "TelUri",
    "TimerConfig",
    "TransactionError",
    "TransactionKey",
    "Transport",
    "Uri",
    "Verdict",
    "canonical_name",
    "client_key",
    "client_transaction",
    "error_response",
    "parse_message",
    "parse_uri",
    "server_key",
    "server_transaction",
]
