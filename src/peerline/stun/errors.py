"""The errors `peerline.stun` raises on purpose.

Parsing raises only `MalformedMessage`, whatever the bytes, so a server can drop
a bad datagram with one `except`. Asking the encoder for something the wire
cannot carry is our own mistake and raises `EncodeError`.
"""

from peerline.errors import PeerlineError


class StunError(PeerlineError):
    """Base of every STUN error."""


class MalformedMessage(StunError):  # noqa: N818 (the name the whole project uses)
    """The bytes are not a well-formed STUN message or attribute value.

    `error_code` is what a server would answer with if it answers at all
    (RFC 8489 §6.3: malformed requests get 400 Bad Request or are dropped).
    """

    error_code = 400


class EncodeError(StunError, ValueError):
    """A value given to the encoder does not fit the wire format."""


class PrepError(StunError, ValueError):
    """A string was refused by SASLprep (RFC 4013) or OpaqueString (RFC 8265)."""
