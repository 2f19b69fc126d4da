"""A peer session without I/O: QUIC (aioquic) over one ICE path, pinned to a fingerprint.

The core is fed the peer's datagrams and the time, and answers with datagrams
for the path, one deadline and events, like every protocol core here. aioquic
is told one made-up peer address (`PATH_ADDRESS`) for the whole session:
the path object decides where bytes really go, so when ICE moves the session
from the relay to a direct pair, or restarts, QUIC sees nothing change and no
connection migration starts.

A server core has no QUIC connection until the client's first Initial packet
arrives (aioquic needs that packet's connection ID to build one); anything
else before it is dropped. Streams and messages are for the application only
once the session is `Connected`: the handshake confirmed and the peer's
certificate matching the pinned fingerprint (see `pinned_quic`).
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum, IntEnum
from typing import Final

from aioquic import tls
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicErrorCode

from peerline.session.config import ALPN, SessionConfig, SessionRole
from peerline.session.errors import EndReason, SessionUsageError
from peerline.session.events import (
    Connected,
    Ended,
    IncomingStream,
    MessageReceived,
    SessionEvent,
    StreamAborted,
    StreamData,
)
from peerline.session.identity import Fingerprint, Identity
from peerline.session.messages import FramingError, MessageReader, encode_message
from peerline.session.pinned_quic import PinnedQuicConnection, initial_destination

PATH_ADDRESS: Final = ("ice-path", 0)
"""The peer address aioquic is given; never resolved or sent to (the path sends)."""


_TIMER_SLACK = 1e-6
"""aioquic's loss timer can fall one rounding error before the moment its packet
counts as lost; handled exactly on time it would fire again and again at the
same instant. A microsecond late always crosses it."""


class SessionState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


class CloseCode(IntEnum):
    """peerline's QUIC application error codes (CONNECTION_CLOSE, RESET_STREAM, STOP_SENDING)."""

    NORMAL = 0x0
    MESSAGE_FRAMING = 0x10
    UNEXPECTED_STREAM = 0x11
    CANCELLED = 0x12


_CRYPTO_BAD_CERTIFICATE = QuicErrorCode.CRYPTO_ERROR + tls.AlertDescription.bad_certificate
_CRYPTO_CERTIFICATE_REQUIRED = (
    QuicErrorCode.CRYPTO_ERROR + tls.AlertDescription.certificate_required
)


def _is_client_initiated(stream_id: int) -> bool:
    return stream_id & 1 == 0


def _is_unidirectional(stream_id: int) -> bool:
    return stream_id & 2 == 2


class SessionCore:
    """One peer session's state: feed it datagrams and time, read datagrams and events."""

    def __init__(
        self,
        *,
        role: SessionRole,
        identity: Identity,
        peer_fingerprint: Fingerprint,
        config: SessionConfig | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.role = role
        self.config = config or SessionConfig()
        self.peer_fingerprint = peer_fingerprint
        self._identity = identity
        self._log = logger or logging.getLogger(__name__)
        self._quic: PinnedQuicConnection | None = None
        self._state = SessionState.CONNECTING
        self._events: deque[SessionEvent] = deque()
        self._held: list[quic_events.QuicEvent] = []
        self._last_sent: float | None = None
        self._ping_uid = 0
        self._open_streams: set[int] = set()
        self._message_stream: int | None = None
        self._peer_message_stream = 2 if role is SessionRole.SERVER else 3
        self._message_reader = MessageReader(self.config.max_message_size)

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def terminated(self) -> bool:
        """QUIC has nothing more to send (after `Ended`, once its closing period is over)."""
        if self._quic is None:
            return self._state is SessionState.ENDED
        return self._state is SessionState.ENDED and self._quic.get_timer() is None

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    # -- inputs --------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: a client sends its first Initial; a server waits for one."""
        if self.role is SessionRole.CLIENT and self._quic is None:
            self._quic = self._new_connection(None)
            self._quic.connect(PATH_ADDRESS, now=now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """A datagram from the path; anything malformed is dropped (aioquic drops it, or we do)."""
        if self._state is SessionState.ENDED and self._quic is None:
            return
        if self._quic is None:
            if self.role is SessionRole.CLIENT:
                return
            destination = initial_destination(data)
            if destination is None:
                return
            self._quic = self._new_connection(destination)
        try:
            self._quic.receive_datagram(data, PATH_ADDRESS, now=now)
        except (ValueError, IndexError) as error:  # aioquic lets a few parse errors out
            self._log.debug("dropped a datagram aioquic could not parse: %s", error)
            return
        self._pump(from_timer=False)

    def handle_timer(self, now: float) -> None:
        quic = self._quic
        if quic is None:
            return
        keepalive = self._keepalive_at()
        if keepalive is not None and now >= keepalive:
            self._ping_uid += 1
            quic.send_ping(self._ping_uid)
            self._last_sent = now
        deadline = quic.get_timer()
        if deadline is not None and now >= deadline:
            quic.handle_timer(now + _TIMER_SLACK)
        self._pump(from_timer=True)

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next, or None when nothing is pending."""
        if self._quic is None:
            return None
        deadlines = [t for t in (self._quic.get_timer(), self._keepalive_at()) if t is not None]
        return min(deadlines, default=None)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        if self._quic is None:
            return []
        datagrams = [data for data, _ in self._quic.datagrams_to_send(now=now)]
        if datagrams:
            self._last_sent = now
        return datagrams

    def path_changed(self) -> None:
        """ICE switched pairs: probe the new one at once (an RTT sample, a fresh NAT binding)."""
        if self._quic is not None and self._state is SessionState.CONNECTED:
            self._ping_uid += 1
            self._quic.send_ping(self._ping_uid)

    def path_lost(self, reason: str) -> None:
        """Nothing reaches the peer any more: the session is over."""
        self._end(EndReason.PATH_LOST, reason, close_code=CloseCode.NORMAL)

    def abort(self, reason: EndReason, detail: str = "") -> None:
        """End the session for a reason found outside the core (a connect timeout)."""
        self._end(reason, detail, close_code=CloseCode.CANCELLED)

    def close(self) -> None:
        """End the session cleanly: the peer is told (CONNECTION_CLOSE, code 0)."""
        self._end(EndReason.LOCAL_CLOSE, "", close_code=CloseCode.NORMAL)

    # -- streams and messages ------------------------------------------------------------

    def open_stream(self) -> int:
        """A new bidirectional stream of ours (it reaches the peer with its first byte)."""
        quic = self._connected()
        stream_id = quic.get_next_available_stream_id()
        quic.send_stream_data(stream_id, b"")
        self._open_streams.add(stream_id)
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        self._connected().send_stream_data(stream_id, data, end_stream=end_stream)

    def reset_stream(self, stream_id: int, code: int = CloseCode.CANCELLED) -> None:
        """Abandon both directions of a stream (RESET_STREAM and STOP_SENDING)."""
        quic = self._connected()
        quic.reset_stream(stream_id, code)
        if stream_id in self._open_streams:
            self._open_streams.discard(stream_id)
            quic.stop_stream(stream_id, code)

    def unacknowledged(self, stream_id: int | None = None) -> int:
        """Bytes of a stream (None: of all, messages too) not yet acknowledged: what
        a writer's drain and a lingering close wait on."""
        return 0 if self._quic is None else self._quic.unacknowledged(stream_id)

    def pause_stream(self, stream_id: int, paused: bool) -> None:
        """Hold back (or give again) the peer's credit on a stream whose reader is full."""
        if self._quic is not None:
            self._quic.withhold_credit(stream_id, paused)

    def send_message(self, data: bytes) -> None:
        """Queue one message on our message stream (opened on first use)."""
        if len(data) > self.config.max_message_size:
            raise SessionUsageError(
                f"a {len(data)}-byte message is over max_message_size "
                f"({self.config.max_message_size})"
            )
        quic = self._connected()
        if self._message_stream is None:
            self._message_stream = quic.get_next_available_stream_id(is_unidirectional=True)
        quic.send_stream_data(self._message_stream, encode_message(data))

    def messages_unacknowledged(self) -> int:
        return 0 if self._message_stream is None else self.unacknowledged(self._message_stream)

    def pause_messages(self, paused: bool) -> None:
        self.pause_stream(self._peer_message_stream, paused)

    # -- internals -----------------------------------------------------------------------

    def _new_connection(self, original_destination: bytes | None) -> PinnedQuicConnection:
        config = self.config
        quic_config = QuicConfiguration(
            alpn_protocols=[ALPN],
            is_client=self.role is SessionRole.CLIENT,
            congestion_control_algorithm=config.congestion_control.value,
            idle_timeout=config.idle_timeout,
            max_datagram_size=config.max_datagram_size,
            max_data=config.connection_window,
            max_stream_data=config.stream_window,
        )
        quic_config.certificate = self._identity.certificate
        quic_config.private_key = self._identity.private_key
        return PinnedQuicConnection(
            configuration=quic_config,
            expected=self.peer_fingerprint,
            original_destination_connection_id=original_destination,
        )

    def _connected(self) -> PinnedQuicConnection:
        if self._state is not SessionState.CONNECTED or self._quic is None:
            raise SessionUsageError(f"the session is {self._state.value}, not connected")
        return self._quic

    def _keepalive_at(self) -> float | None:
        if self._state is not SessionState.CONNECTED or self._last_sent is None:
            return None
        return self._last_sent + self.config.keepalive_interval

    def _end(self, reason: EndReason, detail: str, *, close_code: int) -> None:
        if self._state is SessionState.ENDED:
            return
        self._state = SessionState.ENDED
        self._held.clear()
        if self._quic is not None:
            self._quic.close(error_code=close_code, reason_phrase=reason.value)
        self._log.info("session ended: %s%s", reason.value, f" ({detail})" if detail else "")
        self._events.append(Ended(reason=reason, detail=detail))

    def _pump(self, *, from_timer: bool) -> None:
        """Turn what aioquic did into session events (and end the session when QUIC ends)."""
        quic = self._quic
        assert quic is not None
        if quic.refusal is not None and self._state is not SessionState.ENDED:
            self._end(EndReason.FINGERPRINT_MISMATCH, quic.refusal, close_code=CloseCode.NORMAL)
        while (event := quic.next_event()) is not None:
            if self._state is SessionState.CONNECTED:
                self._translate(event)
            elif self._state is SessionState.CONNECTING and not isinstance(
                event, quic_events.ConnectionTerminated
            ):
                self._held.append(event)
        if self._state is SessionState.CONNECTING and quic.handshake_confirmed:
            self._verify_peer()
        closing = quic.pending_close
        if closing is not None and self._state is not SessionState.ENDED:
            self._peer_ended(closing, from_timer=from_timer)

    def _verify_peer(self) -> None:
        """The gate: connected only with the pinned certificate in hand."""
        quic = self._quic
        assert quic is not None
        peer = quic.peer_certificate
        if peer is None or not self.peer_fingerprint.matches(peer):
            algorithm = self.peer_fingerprint.algorithm
            seen = (
                "no certificate"
                if peer is None
                else Fingerprint.of_certificate(peer, algorithm).hex
            )
            quic.close(
                error_code=_CRYPTO_CERTIFICATE_REQUIRED
                if peer is None
                else _CRYPTO_BAD_CERTIFICATE,
                frame_type=0x06,  # CRYPTO: a transport close, as a TLS alert would be
                reason_phrase="certificate does not match the pinned fingerprint",
            )
            self._end(EndReason.FINGERPRINT_MISMATCH, f"got {seen}", close_code=CloseCode.NORMAL)
            return
        self._state = SessionState.CONNECTED
        self._log.info("session connected to %s", self.peer_fingerprint.hex)
        self._events.append(Connected(peer_fingerprint=self.peer_fingerprint))
        held, self._held = self._held, []
        for event in held:
            self._translate(event)

    def _peer_ended(self, closing: quic_events.ConnectionTerminated, *, from_timer: bool) -> None:
        code, phrase = closing.error_code, closing.reason_phrase
        detail = f"code {code:#x}" + (f": {phrase}" if phrase else "")
        if from_timer:
            self._end(EndReason.IDLE_TIMEOUT, phrase, close_code=CloseCode.NORMAL)
        elif self._state is SessionState.CONNECTING:
            self._end(EndReason.REFUSED_BY_PEER, detail, close_code=CloseCode.NORMAL)
        elif code == CloseCode.NORMAL and closing.frame_type is None:
            self._end(EndReason.PEER_CLOSED, phrase, close_code=CloseCode.NORMAL)
        else:
            self._end(EndReason.PROTOCOL_ERROR, detail, close_code=CloseCode.NORMAL)

    def _translate(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.StreamDataReceived):
            self._stream_data(event)
        elif isinstance(event, quic_events.StreamReset):
            self._open_streams.discard(event.stream_id)
            if event.stream_id == self._peer_message_stream:
                self._message_failure("the peer reset its message stream")
            else:
                self._events.append(
                    StreamAborted(
                        stream_id=event.stream_id, error_code=event.error_code, reset=True
                    )
                )
        elif isinstance(event, quic_events.StopSendingReceived):
            self._events.append(
                StreamAborted(stream_id=event.stream_id, error_code=event.error_code, reset=False)
            )

    def _stream_data(self, event: quic_events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        if _is_unidirectional(stream_id):
            if stream_id == self._peer_message_stream:
                self._message_data(event)
            elif self._quic is not None:
                self._quic.stop_stream(stream_id, CloseCode.UNEXPECTED_STREAM)
            return
        peer_initiated = _is_client_initiated(stream_id) != (self.role is SessionRole.CLIENT)
        if peer_initiated and stream_id not in self._open_streams:
            self._open_streams.add(stream_id)
            self._events.append(IncomingStream(stream_id=stream_id))
        if event.end_stream:
            self._open_streams.discard(stream_id)
        self._events.append(
            StreamData(stream_id=stream_id, data=event.data, end_stream=event.end_stream)
        )

    def _message_data(self, event: quic_events.StreamDataReceived) -> None:
        try:
            messages = self._message_reader.feed(event.data)
            if event.end_stream:
                self._message_reader.finish()
        except FramingError as error:
            self._message_failure(str(error))
            return
        self._events.extend(MessageReceived(data=message) for message in messages)

    def _message_failure(self, detail: str) -> None:
        self._end(EndReason.PROTOCOL_ERROR, detail, close_code=CloseCode.MESSAGE_FRAMING)
