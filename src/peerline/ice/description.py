"""One side's ICE description as text: RFC 8839 attribute lines, one per line.

This is what peers exchange (in a pasted blob today, inside SDP later):

    a=ice-ufrag:8hhY
    a=ice-pwd:asd88fgpdd777uzjYhagZg
    a=ice-options:trickle ice2 peerline+birthday
    a=x-peerline-mapping:independent
    a=candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host
    a=end-of-candidates

`x-peerline-mapping` (how our NAT maps, for the birthday technique) is
peerline's own; other agents skip it as an unknown attribute.

Reading is lenient where SDP is (blank lines, CRLF, lines of other
attributes such as a fingerprint are skipped, `a=` may be left out) and
strict where ICE is: a broken ICE attribute is refused with the line it is on.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.ice.birthday import MAPPING_ATTRIBUTE, Mapping
from peerline.ice.candidate import Candidate
from peerline.ice.errors import IceError, MalformedAttribute
from peerline.ice.sdp import (
    Credentials,
    EndOfCandidates,
    IceAttribute,
    IceLite,
    IceOptions,
    IcePwd,
    IceUfrag,
    format_attribute,
    parse_attribute,
)

_ICE_NAMES = frozenset(
    (
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "end-of-candidates",
        "ice-lite",
        "ice-pacing",
        "remote-candidates",
    )
)
_MAX_LINES = 1000


class BadDescription(IceError):  # noqa: N818 (a user's mistake, named for what it is)
    """The peer's description cannot be used; the message names the line."""

    exit_code = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class IceDescription:
    """What one side tells the other: credentials, options, candidates so far, and
    whether it will trickle more (`end_of_candidates` false: more may follow).
    `mapping` is how its NAT maps, once gathering knows (None: not said)."""

    credentials: Credentials | None
    options: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    lite: bool = False
    mapping: Mapping | None = None

    def to_text(self) -> str:
        """Attribute lines with `a=`, one per line, ending with a newline."""
        attributes: list[IceAttribute] = []
        if self.credentials is not None:
            attributes += [IceUfrag(self.credentials.ufrag), IcePwd(self.credentials.pwd)]
        if self.options:
            attributes.append(IceOptions(self.options))
        if self.lite:
            attributes.append(IceLite())
        lines = [f"a={format_attribute(a)}\n" for a in attributes]
        if self.mapping is not None:
            lines.append(f"a={MAPPING_ATTRIBUTE}:{self.mapping.value}\n")
        rest: list[IceAttribute] = [*self.candidates]
        if self.end_of_candidates:
            rest.append(EndOfCandidates())
        return "".join(lines + [f"a={format_attribute(a)}\n" for a in rest])


def parse_description(text: str) -> IceDescription:
    """Read a description; `BadDescription` for a broken ICE line or a lone ufrag/pwd."""
    lines = text.splitlines()
    if len(lines) > _MAX_LINES:
        raise BadDescription(f"an ICE description of {len(lines)} lines is too long")
    ufrag = pwd = None
    options: tuple[str, ...] = ()
    candidates: list[Candidate] = []
    end = lite = False
    mapping = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        body = line.removeprefix("a=")
        name, _, value = body.partition(":")
        if name == MAPPING_ATTRIBUTE:
            mapping = Mapping.parse(value)
            continue
        if name not in _ICE_NAMES:
            continue  # another SDP line or attribute: not ours to judge
        try:
            attribute = parse_attribute(body)
        except MalformedAttribute as error:
            raise BadDescription(f"line {number}: {error}") from None
        match attribute:
            case Candidate():
                candidates.append(attribute)
            case IceUfrag(value):
                ufrag = value
            case IcePwd(value):
                pwd = value
            case IceOptions(tokens):
                options = tokens
            case EndOfCandidates():
                end = True
            case IceLite():
                lite = True
            case _:
                pass  # ice-pacing, remote-candidates: nothing this agent acts on
    if (ufrag is None) != (pwd is None):
        raise BadDescription("an ICE description needs both ice-ufrag and ice-pwd")
    credentials = None if ufrag is None or pwd is None else Credentials(ufrag, pwd)
    return IceDescription(
        credentials=credentials,
        options=options,
        candidates=tuple(candidates),
        end_of_candidates=end,
        lite=lite,
        mapping=mapping,
    )
