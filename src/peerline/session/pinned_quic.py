"""aioquic's QuicConnection with what peer sessions need and aioquic 1.x has no public API for.

Every reach into aioquic's internals is in this file, so a new aioquic release
is checked here and nowhere else (the session tests exercise each one).

**Mutual authentication by fingerprint.** aioquic verifies a server's certificate
only against CAs and a server name, and a server never asks for a client
certificate (the switch, `tls.Context._request_client_certificate`, is marked as
being for aioquic's own tests). A pinned fingerprint fits neither, and checking
it only once the handshake is over would let the TLS handshake complete with an
impostor. So the TLS context of each connection is adjusted the moment aioquic
creates it (`_initialize`, which runs before the first handshake message is
built or read):

- the server requests a client certificate;
- CA verification is off (`CERT_NONE`: nobody vouches for a self-signed peer);
- the peer certificate, as soon as TLS has parsed it, must hash to the expected
  fingerprint, or the check raises TLS `bad_certificate` inside the handshake:
  aioquic then closes with CRYPTO_ERROR 0x12a and the peer is told why.
  TLS itself checks the CertificateVerify signature right after, so a peer that
  replays someone else's certificate without its key fails the handshake too.

The session core adds a second, independent gate: it declares the session
connected only when `peer_certificate` is present and matches (a client that
sends an empty Certificate message, which TLS allows, is refused there), and
only when the handshake is *confirmed* (RFC 9001 §4.1.2), so a client does not
believe it is connected while the server is still judging its certificate.
That gate fails closed: if a future aioquic stops calling the hooks, sessions
are refused, not accepted unauthenticated.

An alternative was an exchange after the handshake (each side signing something
bound to the connection); aioquic exposes no exporter or transcript hash to bind
it to, and an unbound signature can be relayed by a man in the middle. Checking
inside the TLS handshake is the binding TLS already provides.

**Backpressure.** aioquic buffers whatever it is given and raises its receive
windows as data arrives, whether or not the application reads it. The session
needs to know how much of a stream is still unacknowledged (so a writer's
`drain()` can wait) and to hold back a stream's credit while its reader is full.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from cryptography import x509

from peerline.session.errors import SessionError
from peerline.session.identity import Fingerprint


def _check_aioquic() -> None:
    """Refuse to run on an aioquic whose internals moved (this file is tested with 1.7)."""
    context = tls.Context(is_client=False)
    needed: list[tuple[object, str, str]] = [
        (context, "tls.Context", "_set_peer_certificate"),
        (context, "tls.Context", "_peer_certificate"),
        (context, "tls.Context", "_request_client_certificate"),
        (QuicConnection, "QuicConnection", "_initialize"),
        (QuicConnection, "QuicConnection", "_write_stream_limits"),
    ]
    missing = [f"{owner}.{name}" for obj, owner, name in needed if not hasattr(obj, name)]
    if missing:
        raise SessionError(
            f"this aioquic lacks {', '.join(missing)}: peer sessions need aioquic 1.7 (1.x)"
        )


_check_aioquic()

_MIN_INITIAL = 1200
"""RFC 9000 §14.1: a client's Initial datagram is padded to at least this."""

_VERSIONS = frozenset(QuicConfiguration().supported_versions)


def initial_destination(data: bytes) -> bytes | None:
    """The destination connection ID of a client's first Initial packet, or None
    for anything else (a server builds its connection from this ID)."""
    if len(data) < _MIN_INITIAL:
        return None
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
    except ValueError:  # aioquic's BufferReadError is a ValueError
        return None
    if header.packet_type is not QuicPacketType.INITIAL or header.version not in _VERSIONS:
        return None
    return header.destination_cid


class PinnedQuicConnection(QuicConnection):
    """A QUIC connection that accepts exactly one peer certificate: the one pinned."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        expected: Fingerprint,
        original_destination_connection_id: bytes | None = None,
    ) -> None:
        configuration.verify_mode = ssl.CERT_NONE
        self.expected = expected
        self.refusal: str | None = None
        """Set when this side refused the peer's certificate in the handshake."""
        self._credit_withheld: set[int] = set()
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        context = self.tls
        if not self._is_client:
            context._request_client_certificate = True
        parse_certificate: Callable[[tls.Certificate], None] = context._set_peer_certificate

        def parse_and_check(message: tls.Certificate) -> None:
            parse_certificate(message)
            peer = context._peer_certificate
            if peer is None or not self.expected.matches(peer):
                seen = (
                    "none"
                    if peer is None
                    else Fingerprint.of_certificate(peer, self.expected.algorithm).hex
                )
                self.refusal = f"expected {self.expected.hex}, got {seen}"
                raise tls.AlertBadCertificate("certificate does not match the pinned fingerprint")

        setattr(context, "_set_peer_certificate", parse_and_check)  # noqa: B010 (a method on one object)

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        """The certificate the peer presented, once TLS has read it."""
        context: tls.Context | None = getattr(self, "tls", None)
        return None if context is None else context._peer_certificate

    @property
    def handshake_confirmed(self) -> bool:
        """RFC 9001 §4.1.2: the server got our Finished (client: HANDSHAKE_DONE arrived)."""
        return self._handshake_confirmed

    @property
    def pending_close(self) -> events.ConnectionTerminated | None:
        """Why the connection is closing, as soon as it is known (aioquic reports it
        only after the closing or draining period, up to three PTOs later)."""
        return self._close_event

    def unacknowledged(self, stream_id: int | None = None) -> int:
        """Bytes written to a stream (None: to any stream) and not yet acknowledged."""
        if stream_id is None:
            streams = list(self._streams.values())
        else:
            stream = self._streams.get(stream_id)
            streams = [] if stream is None else [stream]
        return sum(
            s.sender._buffer_stop - s.sender._buffer_start
            for s in streams
            if s.sender._reset_error_code is None  # a reset stream's data will never be acked
        )

    def withhold_credit(self, stream_id: int, withhold: bool) -> None:
        """Stop (or resume) raising the peer's send window on a stream whose reader is full."""
        if withhold:
            self._credit_withheld.add(stream_id)
        else:
            self._credit_withheld.discard(stream_id)

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        if stream.stream_id in self._credit_withheld:
            return
        super()._write_stream_limits(builder, space, stream)
