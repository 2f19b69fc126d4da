"""Offers and answers as one copy-pastable line.

A description is SDP attribute text (RFC 8839 ICE lines, the certificate
fingerprint, peerline's own `x-` lines). People paste it through chat windows
and terminals that wrap, indent or trim lines, so the blob is a prefix and
URL-safe base64 of the deflated text: no spaces, no padding, whitespace anywhere
ignored, and zlib's checksum catches a blob cut short.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from peerline.errors import UsageError

PREFIX = "PL1"
"""Marks a peerline description blob, version 1."""

MAX_TEXT = 64 * 1024
"""No description is this long; a larger one is refused before it is inflated."""


def encode_blob(text: str) -> str:
    """`text` as one line: PL1 + base64url(deflate(text))."""
    packed = zlib.compress(text.encode(), 9)
    return PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_blob(blob: str) -> str:
    """The text of a blob made by `encode_blob`; a `UsageError` saying what is wrong."""
    compact = "".join(blob.split())
    if not compact.startswith(PREFIX):
        raise UsageError(f"not a peerline offer or answer (it should start with {PREFIX})")
    body = compact[len(PREFIX) :]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_TEXT + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise UsageError("the offer or answer is damaged or incomplete; paste all of it") from None
    if len(raw) > MAX_TEXT:
        raise UsageError("the offer or answer is too long")
    if not inflater.eof:
        raise UsageError("the offer or answer is incomplete; paste all of it")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise UsageError("the offer or answer is damaged") from None
