"""The other ICE attributes of SDP (RFC 8839 §5, RFC 8840 §8): credentials, options,
end-of-candidates, remote-candidates, pacing, lite.

Each is a small frozen value with `parse_attribute` to read one line and
`format_attribute` to write it back, so the same text travels in a pasted blob
today and inside SIP later. Parsing raises only `MalformedAttribute`.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from peerline.ice.candidate import (
    MAX_COMPONENT,
    Candidate,
    canonical_host,
    is_ice_chars,
    parse_number,
)
from peerline.ice.errors import MalformedAttribute
from peerline.stun import TransportAddress

_ICE_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The short-term credentials of one side of one ICE session (RFC 8445 §5.3).

    RFC 8839 §5.4: ufrag is 4-256 ice-chars, pwd 22-256; RFC 8445 asks for at
    least 24 random bits in the ufrag and 128 in the password.
    """

    ufrag: str
    pwd: str

    def __post_init__(self) -> None:
        if not 4 <= len(self.ufrag) <= 256 or not is_ice_chars(self.ufrag):
            raise MalformedAttribute("ice-ufrag must be 4-256 ice-chars")
        if not 22 <= len(self.pwd) <= 256 or not is_ice_chars(self.pwd):
            raise MalformedAttribute("ice-pwd must be 22-256 ice-chars")

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh random credentials: 8 ice-chars (48 bits) and 24 (144 bits)."""
        return cls(
            "".join(secrets.choice(_ICE_ALPHABET) for _ in range(8)),
            "".join(secrets.choice(_ICE_ALPHABET) for _ in range(24)),
        )


@dataclass(frozen=True, slots=True)
class IceUfrag:
    """`a=ice-ufrag:` (RFC 8839 §5.4)."""

    value: str


@dataclass(frozen=True, slots=True)
class IcePwd:
    """`a=ice-pwd:` (RFC 8839 §5.4)."""

    value: str


@dataclass(frozen=True, slots=True)
class IceOptions:
    """`a=ice-options:` (RFC 8839 §5.6): tokens such as `trickle` and `ice2`."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.tokens or not all(is_ice_chars(t) for t in self.tokens):
            raise MalformedAttribute("ice-options must be one or more ice-char tokens")


@dataclass(frozen=True, slots=True)
class EndOfCandidates:
    """`a=end-of-candidates` (RFC 8840 §8.2): the sender will trickle no more."""


@dataclass(frozen=True, slots=True)
class IceLite:
    """`a=ice-lite` (RFC 8839 §5.3): the peer only answers checks."""


@dataclass(frozen=True, slots=True)
class IcePacing:
    """`a=ice-pacing:` (RFC 8839 §5.5): the pacing (Ta) the sender wants, in ms."""

    milliseconds: int


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """One entry of `a=remote-candidates`: a component and the address used for it."""

    component: int
    address: TransportAddress


@dataclass(frozen=True, slots=True)
class RemoteCandidates:
    """`a=remote-candidates:` (RFC 8839 §5.2): the pair the controlling agent chose."""

    candidates: tuple[RemoteCandidate, ...]


IceAttribute = (
    Candidate
    | IceUfrag
    | IcePwd
    | IceOptions
    | EndOfCandidates
    | IceLite
    | IcePacing
    | RemoteCandidates
)


def parse_attribute(line: str) -> IceAttribute:
    """One ICE attribute, with or without the leading `a=`.

    Anything that is not one of the attributes above, or breaks its grammar,
    raises `MalformedAttribute` (an SDP reader skips attributes it does not know
    before calling this).
    """
    body = line.removeprefix("a=")
    name, colon, value = body.partition(":")
    if name == "candidate" and colon:
        return Candidate.from_sdp(body)
    if name in ("end-of-candidates", "ice-lite"):
        if colon:
            raise MalformedAttribute(f"a={name} takes no value")
        return EndOfCandidates() if name == "end-of-candidates" else IceLite()
    if not colon:
        raise MalformedAttribute(f"not an ICE attribute: {line[:40]!r}")
    if name == "ice-ufrag":
        Credentials(value, "x" * 22)  # the same rule as credentials
        return IceUfrag(value)
    if name == "ice-pwd":
        Credentials("xxxx", value)
        return IcePwd(value)
    if name == "ice-options":
        return IceOptions(tuple(value.split(" ")))
    if name == "ice-pacing":
        return IcePacing(parse_number(value, "ice-pacing"))
    if name == "remote-candidates":
        return RemoteCandidates(_parse_remote_candidates(value))
    raise MalformedAttribute(f"not an ICE attribute: {name[:40]!r}")


def _parse_remote_candidates(value: str) -> tuple[RemoteCandidate, ...]:
    fields = value.split(" ")
    if len(fields) % 3:
        raise MalformedAttribute("remote-candidates come as component address port")
    found = []
    for i in range(0, len(fields), 3):
        component = parse_number(fields[i], "component")
        if not 1 <= component <= MAX_COMPONENT:
            raise MalformedAttribute(f"component out of range 1-256: {component}")
        port = parse_number(fields[i + 2], "port")
        if port > 65535:
            raise MalformedAttribute(f"port out of range: {port}")
        found.append(
            RemoteCandidate(component, TransportAddress(canonical_host(fields[i + 1]), port))
        )
    return tuple(found)


def format_attribute(attribute: IceAttribute) -> str:
    """The attribute as one SDP line body, without `a=` and without CRLF."""
    match attribute:
        case Candidate():
            return attribute.to_sdp()
        case IceUfrag(value):
            return f"ice-ufrag:{value}"
        case IcePwd(value):
            return f"ice-pwd:{value}"
        case IceOptions(tokens):
            return "ice-options:" + " ".join(tokens)
        case EndOfCandidates():
            return "end-of-candidates"
        case IceLite():
            return "ice-lite"
        case IcePacing(milliseconds):
            return f"ice-pacing:{milliseconds}"
        case RemoteCandidates(candidates):
            return "remote-candidates:" + " ".join(
                f"{c.component} {c.address.ip} {c.address.port}" for c in candidates
            )
