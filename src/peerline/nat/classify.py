"""From RFC 5780 test outcomes to what a user wants to know about their NAT.

Pure functions over the observations the probe made: no sockets here, so every
combination of outcomes is unit-tested without a network.
"""

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from peerline.net import Address, format_address


class Behaviour(StrEnum):
    """RFC 4787 mapping and filtering behaviours."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class ClassicType(StrEnum):
    """The RFC 3489 names users know."""

    OPEN = "open"
    FULL_CONE = "full cone"
    RESTRICTED_CONE = "restricted cone"
    PORT_RESTRICTED_CONE = "port-restricted cone"
    SYMMETRIC = "symmetric"
    UDP_BLOCKED = "UDP blocked"
    SYMMETRIC_FIREWALL = "symmetric firewall"


class Group(StrEnum):
    """Groups of NAT classification test results (A, B, D, F)."""

    A = "A"
    B = "B"
    D = "D"
    F = "F"


GROUP_MEANING = {
    Group.A: "deterministic mapping that hairpins: direct connections work with almost "
    "every peer, including peers behind this same NAT.",
    Group.B: "endpoint-independent mapping: hole punching works with most peers; peers "
    "behind this same NAT need their local addresses, as the NAT does not hairpin.",
    Group.D: "like B, but port collisions can deliver to the wrong inside host.",
    Group.F: "symmetric mapping: each destination sees a different public port, so direct "
    "connections fail with restrictive peers and often need a relay (TURN).",
}


@dataclass(frozen=True, slots=True)
class Observations:
    """What the probe saw; None where a test could not run."""

    local: Address
    #: XOR-MAPPED-ADDRESS from the primary address (test I); None = no answer at all.
    mapped: Address | None
    #: MAPPED-ADDRESS from the same response, when the server sent one.
    plain_mapped: Address | None = None
    #: XOR-MAPPED-ADDRESS seen via the alternate IP, primary port (mapping test II).
    mapped_alt_ip: Address | None = None
    #: XOR-MAPPED-ADDRESS seen via the alternate IP and port (mapping test III).
    mapped_alt_both: Address | None = None
    #: Answer to CHANGE-REQUEST (change IP and port) arrived (filtering test II).
    filtering_change_both: bool | None = None
    #: Answer to CHANGE-REQUEST (change port only) arrived (filtering test III).
    filtering_change_port: bool | None = None
    #: A request sent to our own mapped address came back to us.
    hairpin: bool | None = None
    #: Binding lifetime in seconds (lower bound of the last search step), if measured.
    lifetime_s: float | None = None
    #: Why tests that could not run did not.
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NatReport:
    udp: bool
    public_address: str | None
    nat: bool | None
    mapping: Behaviour | None
    filtering: Behaviour | None
    hairpinning: bool | None
    port_preservation: bool | None
    alg: bool | None
    binding_lifetime_s: float | None
    classic_type: ClassicType | None
    group: Group | None
    meaning: str
    skipped: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = list(self.skipped)
        return data


def mapping_behaviour(obs: Observations) -> Behaviour | None:
    if obs.mapped is None or obs.mapped_alt_ip is None:
        return None
    if obs.mapped_alt_ip == obs.mapped:
        return Behaviour.ENDPOINT_INDEPENDENT
    if obs.mapped_alt_both is None:
        return None
    if obs.mapped_alt_both == obs.mapped_alt_ip:
        return Behaviour.ADDRESS_DEPENDENT
    return Behaviour.ADDRESS_AND_PORT_DEPENDENT


def filtering_behaviour(obs: Observations) -> Behaviour | None:
    if obs.filtering_change_both:
        return Behaviour.ENDPOINT_INDEPENDENT
    if obs.filtering_change_both is None or obs.filtering_change_port is None:
        return None
    if obs.filtering_change_port:
        return Behaviour.ADDRESS_DEPENDENT
    return Behaviour.ADDRESS_AND_PORT_DEPENDENT


def classic_type(
    nat: bool, mapping: Behaviour | None, filtering: Behaviour | None
) -> ClassicType | None:
    if not nat:
        if filtering is None:
            return None
        if filtering is Behaviour.ENDPOINT_INDEPENDENT:
            return ClassicType.OPEN
        return ClassicType.SYMMETRIC_FIREWALL
    if mapping is None:
        return None
    if mapping is not Behaviour.ENDPOINT_INDEPENDENT:
        return ClassicType.SYMMETRIC
    return {
        Behaviour.ENDPOINT_INDEPENDENT: ClassicType.FULL_CONE,
        Behaviour.ADDRESS_DEPENDENT: ClassicType.RESTRICTED_CONE,
        Behaviour.ADDRESS_AND_PORT_DEPENDENT: ClassicType.PORT_RESTRICTED_CONE,
        None: None,
    }[filtering]


def group(nat: bool, mapping: Behaviour | None, hairpin: bool | None) -> Group | None:
    """A: EIM that hairpins; B: EIM without (known) hairpinning; F: anything symmetric.

    D (wrong host on port collisions) needs two inside hosts to observe; one
    client cannot tell it from B, so it is never reported from a single probe.
    """
    if not nat:
        return Group.A
    if mapping is None:
        return None
    if mapping is not Behaviour.ENDPOINT_INDEPENDENT:
        return Group.F
    return Group.A if hairpin else Group.B


def _meaning(report_nat: bool | None, classic: ClassicType | None, grp: Group | None) -> str:
    if classic is ClassicType.OPEN:
        return "No NAT and no filtering: anyone can reach this host directly."
    if classic is ClassicType.SYMMETRIC_FIREWALL:
        return (
            "No NAT, but a firewall admits only peers this host contacted first: hole "
            "punching works with most peers."
        )
    if grp is not None:
        return f"Group {grp}: {GROUP_MEANING[grp]}"
    if report_nat is None:
        return "No answer from the STUN server: UDP may be blocked."
    return "Not enough tests could run to classify this NAT."


def classify(obs: Observations) -> NatReport:
    if obs.mapped is None:
        return NatReport(
            udp=False,
            public_address=None,
            nat=None,
            mapping=None,
            filtering=None,
            hairpinning=None,
            port_preservation=None,
            alg=None,
            binding_lifetime_s=None,
            classic_type=ClassicType.UDP_BLOCKED,
            group=None,
            meaning="No answer over UDP: UDP is blocked (or the server is down); only "
            "TURN over TCP/TLS can get through.",
            skipped=obs.skipped,
        )
    nat = obs.mapped != obs.local
    mapping = None if not nat else mapping_behaviour(obs)
    filtering = filtering_behaviour(obs)
    classic = classic_type(nat, mapping, filtering)
    grp = group(nat, mapping, obs.hairpin)
    return NatReport(
        udp=True,
        public_address=format_address(obs.mapped),
        nat=nat,
        mapping=mapping if nat else Behaviour.ENDPOINT_INDEPENDENT,
        filtering=filtering,
        hairpinning=obs.hairpin,
        port_preservation=obs.mapped[1] == obs.local[1],
        alg=None if obs.plain_mapped is None else obs.plain_mapped != obs.mapped,
        binding_lifetime_s=obs.lifetime_s,
        classic_type=classic,
        group=grp,
        meaning=_meaning(nat, classic, grp),
        skipped=obs.skipped,
    )
