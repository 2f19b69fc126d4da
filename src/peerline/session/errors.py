"""The errors `peerline.session` raises on purpose, and why a session ended.

Every waiter on a session (connect, accept, a stream read or drain, a message
receive) that can no longer be served gets a `SessionClosed` carrying the one
`EndReason` the session ended for, so an application can tell a dead path from
an impostor from a peer that simply hung up.
"""

from __future__ import annotations

from enum import Enum

from peerline.errors import PeerlineError


class SessionError(PeerlineError):
    """Base of every peer session error."""


class MalformedFingerprint(SessionError, ValueError):  # noqa: N818 (the project's parse-error name)
    """An `a=fingerprint` value (RFC 8122 §5) that does not follow the grammar."""


class IdentityError(SessionError):
    """A node identity on disk that cannot be read or is not ours to use."""


class SessionUsageError(SessionError, ValueError):
    """The session was asked for something its state does not allow (our mistake)."""


class EndReason(Enum):
    """Why a session is over; the value is the phrase people read."""

    LOCAL_CLOSE = "closed by us"
    PEER_CLOSED = "closed by the peer"
    PATH_LOST = "the path to the peer was lost"
    IDLE_TIMEOUT = "nothing heard from the peer for the idle timeout"
    CONNECT_TIMEOUT = "no session within the connect timeout"
    FINGERPRINT_MISMATCH = "the peer's certificate does not match its fingerprint"
    REFUSED_BY_PEER = "the peer refused our certificate or the handshake"
    PROTOCOL_ERROR = "protocol error"


class SessionClosed(SessionError):  # noqa: N818 (an event name, like h2's StreamClosedError)
    """The session ended; `reason` says why and `detail` adds what is known."""

    def __init__(self, reason: EndReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class StreamReset(SessionError):  # noqa: N818 (an event name)
    """The peer abandoned a stream (QUIC RESET_STREAM) before its end."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset by the peer (code {error_code})")
        self.stream_id = stream_id
        self.error_code = error_code
