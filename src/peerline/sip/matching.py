"""Which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).

A key is a plain hashable value, so the owner of the transactions keeps them
in a dict. Requests whose top Via has no RFC 3261 branch (RFC 2543 peers, or
the bare `z9hG4bK` of RFC 4475 §3.2.1) get the older key built from the
Request-URI, From tag, Call-ID, CSeq number and top Via, which is enough to
match their retransmissions, ACKs and CANCELs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from peerline.sip.fields import MAGIC_COOKIE
from peerline.sip.message import Message, Request
from peerline.sip.methods import Method
from peerline.sip.uri import canonical_host


@dataclass(frozen=True, slots=True)
class TransactionKey:
    #: The branch, or "" for an RFC 2543 key.
    branch: str
    #: The top Via's sent-by (servers only: two clients may pick the same branch).
    sent_by: str
    #: The request method, ACK counted as INVITE.
    method: str
    #: RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number, top Via.
    legacy: tuple[str, ...] = ()


def new_branch() -> str:
    """A fresh branch: the magic cookie and 96 random bits (RFC 3261 §8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_urlsafe(12)


def _method(method: str) -> str:
    return Method.INVITE if method == Method.ACK else method


def client_key(message: Message) -> TransactionKey:
    """The key of the client transaction a request created or a response answers:
    the top Via branch and the CSeq method."""
    branch = message.top_via.branch or ""
    return TransactionKey(branch, "", message.cseq.method)


def server_key(request: Request) -> TransactionKey:
    """The key of the server transaction a received request belongs to."""
    via = request.top_via
    host = canonical_host(via.host)
    sent_by = host if via.port is None else f"{host}:{via.port}"
    method = _method(request.method)
    if via.has_rfc3261_branch:
        return TransactionKey(via.branch or "", sent_by, method)
    legacy = (
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.number),
        str(via),
    )
    return TransactionKey("", sent_by, method, legacy)


def cancel_target_key(cancel: Request) -> TransactionKey:
    """The key of the server transaction a CANCEL asks to stop (RFC 3261 §9.2)."""
    return replace(server_key(cancel), method=Method.INVITE)
