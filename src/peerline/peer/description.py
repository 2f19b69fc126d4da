"""What one peer tells the other before they connect: an offer or an answer.

It is SDP attribute text, so it can later travel inside SIP unchanged: the ICE
lines (RFC 8839, as the ICE transport writes them), the certificate fingerprint
(RFC 8122) the session pins, and one line of our own saying which it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from peerline.errors import UsageError
from peerline.session.blob import decode_blob, encode_blob
from peerline.session.errors import MalformedFingerprint
from peerline.session.identity import Fingerprint

KIND_ATTRIBUTE = "x-peerline"
"""`a=x-peerline:offer` or `a=x-peerline:answer`, first line of a description."""


class Kind(Enum):
    OFFER = "offer"
    ANSWER = "answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDescription:
    """An offer or answer: `ice` is the ICE transport's own text, kept as is."""

    kind: Kind
    fingerprint: Fingerprint
    ice: str

    def to_text(self) -> str:
        lines = [f"a={KIND_ATTRIBUTE}:{self.kind.value}", self.fingerprint.format_attribute()]
        return "\n".join(lines) + "\n" + self.ice

    def to_blob(self) -> str:
        return encode_blob(self.to_text())

    @classmethod
    def from_text(cls, text: str, *, expect: Kind) -> PeerDescription:
        """Read a description; one clear `UsageError` when it is not the `expect`ed kind."""
        kind: Kind | None = None
        fingerprint: Fingerprint | None = None
        ice: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            body = line.removeprefix("a=")
            name, _, value = body.partition(":")
            if name == KIND_ATTRIBUTE:
                try:
                    kind = Kind(value.strip())
                except ValueError:
                    raise UsageError(f"unknown peerline description kind {value!r}") from None
            elif name == "fingerprint":
                try:
                    fingerprint = Fingerprint.parse(line)
                except MalformedFingerprint as error:
                    raise UsageError(f"bad fingerprint in the {expect.value}: {error}") from None
            elif line:
                ice.append(line)
        if kind is None:
            raise UsageError(f"this is not a peerline {expect.value}")
        if kind is not expect:
            raise UsageError(f"this is an {kind.value}; an {expect.value} is needed here")
        if fingerprint is None:
            raise UsageError(f"the {expect.value} has no certificate fingerprint")
        return cls(kind=kind, fingerprint=fingerprint, ice="\n".join(ice) + "\n")

    @classmethod
    def from_blob(cls, blob: str, *, expect: Kind) -> PeerDescription:
        return cls.from_text(decode_blob(blob), expect=expect)
