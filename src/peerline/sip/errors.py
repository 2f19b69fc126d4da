"""The errors of the SIP core: one for what the peer sent, one for what we did wrong.

`MalformedMessage` is the only exception the parser lets out. It carries the
status to answer with when a response can still be routed (usually 400), and
the request as far as it could be read, so that a server can copy its Via,
From, To, Call-ID and CSeq into that answer without parsing anything again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peerline.errors import PeerlineError

if TYPE_CHECKING:
    from peerline.sip.headers import Headers


class MalformedMessage(PeerlineError):  # noqa: N818 -- the name the project uses
    """The peer sent bytes that are not a SIP message we can accept.

    `status` is the response code to send back (400, 505, 501...) or None when
    no response may be sent: responses are never answered, and a request whose
    Via, From, To, Call-ID or CSeq cannot be read cannot be answered either.
    """

    def __init__(
        self, reason: str, *, status: int | None = 400, headers: Headers | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers


class TransactionError(PeerlineError):
    """We asked a transaction for something its state does not allow.

    This is our own protocol error (h11's LocalProtocolError): for example a
    second final response, or any input after the transaction terminated.
    """
