"""What a session core tells its adapter: frozen, keyword-only values."""

from __future__ import annotations

from dataclasses import dataclass

from peerline.session.errors import EndReason
from peerline.session.identity import Fingerprint


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    """Base of the session core's events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(SessionEvent):
    """The handshake is confirmed and the peer proved it holds the pinned certificate."""

    peer_fingerprint: Fingerprint


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingStream(SessionEvent):
    """The peer opened a byte stream; its data follows as `StreamData`."""

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamData(SessionEvent):
    """Bytes of a stream, in order; `end_stream` when the peer finished it (EOF)."""

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAborted(SessionEvent):
    """The peer reset its side of a stream (`reset`) or asked us to stop sending."""

    stream_id: int
    error_code: int
    reset: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(SessionEvent):
    """One whole message from the peer's message channel."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Ended(SessionEvent):
    """The session is over and will carry nothing more; emitted once."""

    reason: EndReason
    detail: str = ""
