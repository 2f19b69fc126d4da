"""ICE candidates (RFC 8445 §5.1) and their SDP `candidate` attribute (RFC 8839 §5.1).

A `Candidate` is immutable and validates itself when built, so a candidate that
exists is one that can be written to SDP and read back equal. Priorities and
foundations are computed here, by the rules of RFC 8445 §5.1.2 and §5.1.1.3, so
that the adapter gathering candidates and the agent learning peer-reflexive ones
compute them the same way.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field, replace
from enum import Enum

from peerline.ice.errors import MalformedAttribute
from peerline.stun import TransportAddress

MAX_PRIORITY = 2**31 - 1
"""RFC 8445 §5.1.2.1: a priority is a positive integer from 1 to 2^31 - 1."""

MAX_LOCAL_PREFERENCE = 65535
"""RFC 8445 §5.1.2.1: the local preference is 16 bits; 65535 when there is one address."""

MAX_COMPONENT = 256
"""RFC 8445 §5.1.2.1 and RFC 8839 §5.1: component IDs run from 1 to 256."""

_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 8866 token-char
_VCHARS = re.compile(r"[\x21-\x7e]+")
_FQDN = re.compile(r"[A-Za-z0-9.\-]{4,}")  # RFC 8866 FQDN = 4*(alpha-numeric / "-" / ".")
_DIGITS = re.compile(r"[0-9]{1,10}")


class CandidateType(Enum):
    """The four candidate types (RFC 8445 §5.1.1); values are the SDP `typ` tokens."""

    HOST = "host"
    SERVER_REFLEXIVE = "srflx"
    PEER_REFLEXIVE = "prflx"
    RELAYED = "relay"

    @property
    def type_preference(self) -> int:
        """RFC 8445 §5.1.2.2 recommended values: direct paths first, relays last."""
        return _TYPE_PREFERENCE[self]


_TYPE_PREFERENCE = {
    CandidateType.HOST: 126,
    CandidateType.PEER_REFLEXIVE: 110,
    CandidateType.SERVER_REFLEXIVE: 100,
    CandidateType.RELAYED: 0,
}


class TransportProtocol(Enum):
    """The transport of a candidate. peerline runs ICE over UDP; TCP candidates
    (RFC 6544) are read so that an offer carrying them still parses, then ignored."""

    UDP = "UDP"
    TCP = "TCP"


def candidate_priority(
    candidate_type: CandidateType,
    *,
    local_preference: int = MAX_LOCAL_PREFERENCE,
    component: int = 1,
) -> int:
    """RFC 8445 §5.1.2.1: 2^24·type preference + 2^8·local preference + (256 - component).

    The type dominates, the local preference orders addresses of one type (RFC 8421
    for dual stack), and component 1 outranks component 2.
    """
    if not 0 <= local_preference <= MAX_LOCAL_PREFERENCE:
        raise ValueError(f"local preference out of range 0-65535: {local_preference}")
    if not 1 <= component <= MAX_COMPONENT:
        raise ValueError(f"component out of range 1-256: {component}")
    return (candidate_type.type_preference << 24) + (local_preference << 8) + (256 - component)


def peer_reflexive_priority(priority: int) -> int:
    """The PRIORITY a check carries (RFC 8445 §7.1.1): the local candidate's own
    priority with the peer-reflexive type preference in place of its type's."""
    return (CandidateType.PEER_REFLEXIVE.type_preference << 24) | (priority & 0x00FFFFFF)


def compute_foundation(
    candidate_type: CandidateType,
    base_ip: str,
    *,
    server_ip: str | None = None,
    transport: TransportProtocol = TransportProtocol.UDP,
) -> str:
    """RFC 8445 §5.1.1.3: equal for candidates of the same type, base IP, server and
    transport, different otherwise. A digest keeps it short and made of ice-chars,
    and the same inputs give the same foundation in every process."""
    text = f"{candidate_type.value} {base_ip} {server_ip or '-'} {transport.value}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def canonical_host(text: str) -> str:
    """An IP literal in canonical form, or a host name as given (mDNS `.local` names,
    RFC 8839 allows FQDNs); anything else raises `MalformedAttribute`."""
    if "%" in text:
        raise MalformedAttribute(f"a zone index has no place in SDP: {text!r}")
    if ":" in text:
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise MalformedAttribute(f"bad IPv6 address {text!r}") from None
    if text and all(c.isdigit() or c == "." for c in text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise MalformedAttribute(f"bad IPv4 address {text!r}") from None
    if not _FQDN.fullmatch(text):
        raise MalformedAttribute(f"bad connection address {text!r}")
    return text


def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or IPv6 literal, False for a host name still to resolve."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_address(address: TransportAddress, what: str) -> TransportAddress:
    if not 0 <= address.port <= 65535:
        raise MalformedAttribute(f"{what} port out of range: {address.port}")
    return TransportAddress(canonical_host(address.ip), address.port)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One candidate as both agents see it (RFC 8445 §5.1; RFC 8839 §5.1 fields).

    `related_address` is the SDP raddr/rport: the base of a server-reflexive
    candidate, the mapped address of a relayed one. `extensions` are the
    name/value pairs after them (generation, network-id, tcptype...), kept in
    order so that nothing the peer wrote is lost.
    """

    foundation: str
    component: int
    transport: TransportProtocol = TransportProtocol.UDP
    priority: int
    address: TransportAddress
    type: CandidateType
    related_address: TransportAddress | None = None
    extensions: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 1 <= len(self.foundation) <= 32 or not _ICE_CHARS.fullmatch(self.foundation):
            raise MalformedAttribute(f"foundation must be 1-32 ice-chars: {self.foundation!r}")
        if not 1 <= self.component <= MAX_COMPONENT:
            raise MalformedAttribute(f"component out of range 1-256: {self.component}")
        if not 1 <= self.priority <= MAX_PRIORITY:
            raise MalformedAttribute(f"priority out of range 1-2^31-1: {self.priority}")
        object.__setattr__(self, "address", _check_address(self.address, "candidate"))
        if self.related_address is not None:
            related = _check_address(self.related_address, "related")
            object.__setattr__(self, "related_address", related)
        for name, value in self.extensions:
            if not _TOKEN.fullmatch(name) or name in ("raddr", "rport", "typ"):
                raise MalformedAttribute(f"bad candidate extension name {name!r}")
            if not _VCHARS.fullmatch(value):
                raise MalformedAttribute(f"bad value for candidate extension {name!r}")

    # -- the common ways to make one ----------------------------------------------

    @classmethod
    def _gathered(
        cls,
        kind: CandidateType,
        address: tuple[str, int],
        *,
        base_ip: str,
        server_ip: str | None,
        related: tuple[str, int] | None,
        component: int,
        local_preference: int,
    ) -> Candidate:
        return cls(
            foundation=compute_foundation(kind, base_ip, server_ip=server_ip),
            component=component,
            priority=candidate_priority(
                kind, local_preference=local_preference, component=component
            ),
            address=TransportAddress(*address),
            type=kind,
            related_address=None if related is None else TransportAddress(*related),
        )

    @classmethod
    def host(
        cls,
        address: tuple[str, int],
        *,
        component: int = 1,
        local_preference: int = MAX_LOCAL_PREFERENCE,
    ) -> Candidate:
        """A host candidate: an address of one of our own interfaces."""
        return cls._gathered(
            CandidateType.HOST,
            address,
            base_ip=address[0],
            server_ip=None,
            related=None,
            component=component,
            local_preference=local_preference,
        )

    @classmethod
    def server_reflexive(
        cls,
        address: tuple[str, int],
        *,
        base: tuple[str, int],
        server: tuple[str, int],
        component: int = 1,
        local_preference: int = MAX_LOCAL_PREFERENCE,
    ) -> Candidate:
        """What a STUN (or TURN) server saw as our address; `base` is where we sent from."""
        return cls._gathered(
            CandidateType.SERVER_REFLEXIVE,
            address,
            base_ip=base[0],
            server_ip=server[0],
            related=base,
            component=component,
            local_preference=local_preference,
        )

    @classmethod
    def relayed(
        cls,
        address: tuple[str, int],
        *,
        mapped: tuple[str, int],
        server: tuple[str, int],
        component: int = 1,
        local_preference: int = MAX_LOCAL_PREFERENCE,
    ) -> Candidate:
        """A TURN relayed address; `mapped` is our reflexive address seen by the server.

        Its base is the relayed address itself (RFC 8445 §5.1.1.2): the adapter
        sends what the agent emits from this base through the TURN allocation.
        """
        return cls._gathered(
            CandidateType.RELAYED,
            address,
            base_ip=address[0],
            server_ip=server[0],
            related=mapped,
            component=component,
            local_preference=local_preference,
        )

    # -- reading and writing SDP --------------------------------------------------

    @property
    def is_resolved(self) -> bool:
        """False when the address is a host name (an mDNS name, say) the adapter must
        resolve before the agent can use the candidate."""
        return is_ip_literal(self.address.ip)

    def with_address(self, address: tuple[str, int]) -> Candidate:
        """The same candidate at another address (e.g. an mDNS name once resolved)."""
        return replace(self, address=TransportAddress(*address))

    def to_sdp(self) -> str:
        """The attribute as RFC 8839 §5.1 writes it, without the `a=` prefix."""
        parts = [
            f"candidate:{self.foundation}",
            str(self.component),
            self.transport.value,
            str(self.priority),
            self.address.ip,
            str(self.address.port),
            "typ",
            self.type.value,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address.ip, "rport", str(self.related_address.port)]
        for name, value in self.extensions:
            parts += [name, value]
        return " ".join(parts)

    @classmethod
    def from_sdp(cls, text: str) -> Candidate:
        """Parse `candidate:...` (with or without `a=`); `MalformedAttribute` otherwise.

        Strict: single spaces, the fields in RFC 8839 order, raddr and rport
        together, known transports (UDP, TCP) and types only.
        """
        body = text.removeprefix("a=")
        if not body.startswith("candidate:"):
            raise MalformedAttribute("not a candidate attribute")
        fields = body[len("candidate:") :].split(" ")
        if len(fields) < 8 or fields[6] != "typ":
            raise MalformedAttribute("candidate needs 8 fields ending with 'typ TYPE'")
        foundation, component, transport, priority, ip, port, _, kind = fields[:8]
        rest = fields[8:]
        related = None
        if rest[:1] == ["raddr"]:
            if len(rest) < 4 or rest[2] != "rport":
                raise MalformedAttribute("raddr must be followed by an address and rport")
            related = TransportAddress(canonical_host(rest[1]), parse_number(rest[3], "rport"))
            rest = rest[4:]
        if len(rest) % 2:
            raise MalformedAttribute("candidate extensions come in name/value pairs")
        try:
            return cls(
                foundation=foundation,
                component=parse_number(component, "component"),
                transport=TransportProtocol(transport.upper()),
                priority=parse_number(priority, "priority"),
                address=TransportAddress(canonical_host(ip), parse_number(port, "port")),
                type=CandidateType(kind),
                related_address=related,
                extensions=tuple(zip(rest[::2], rest[1::2], strict=True)),
            )
        except ValueError as error:  # an unknown transport or type token
            raise MalformedAttribute(str(error)) from None


def parse_number(text: str, what: str) -> int:
    """Decimal digits only (no sign, no spaces, at most 10 digits), as the ABNF says."""
    if not _DIGITS.fullmatch(text):
        raise MalformedAttribute(f"{what} must be decimal digits: {text!r}")
    return int(text)


def is_ice_chars(text: str) -> bool:
    """RFC 8839 §5.4 ice-char: ALPHA / DIGIT / "+" / "/"."""
    return bool(_ICE_CHARS.fullmatch(text))
