"""Proving that a lab NAT maps and filters as its profile says, with plain UDP packets.

A *vantage* is three sockets on a public host with two addresses: ip1:p1 (primary),
ip1:p2 (other port) and ip2:p1 (other address). Packets from a fresh inside socket
to all three show the mapping (RFC 4787 section 4.1); replies from all three after
one packet out show the filtering (section 5). Results are observations; the tests
assert them and the demo prints them.
"""

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from peerline.lab.lab import Lab
from peerline.lab.probing import Probe, ProbeSocket
from peerline.lab.profiles import Profile
from peerline.lab.tools import LabError
from peerline.nat.classify import Behaviour
from peerline.net import Address, format_address

#: The vantage's ports on the public host.
PRIMARY_PORT = 7000
OTHER_PORT = 7001
#: How long to wait for a packet that should arrive (generous: a loaded 2-core CI box).
ARRIVAL_S = 2.0
#: How long to wait before deciding a packet with nothing to pace it was dropped.
DROP_S = 0.5

_tokens = itertools.count()


def _token(kind: str) -> str:
    """A payload no other probe sends, so strays from earlier probes never count."""
    return f"{kind}-{os.getpid()}-{next(_tokens)}"


@dataclass(frozen=True, slots=True)
class Vantage:
    primary: ProbeSocket
    other_port: ProbeSocket
    other_address: ProbeSocket

    @classmethod
    def open(
        cls,
        probe: Probe,
        addresses: tuple[str, ...],
        ports: tuple[int, int] = (PRIMARY_PORT, OTHER_PORT),
    ) -> "Vantage":
        """Sockets on the first two `addresses` of `probe`'s host; other `ports` let
        several vantages share one host."""
        if len(addresses) < 2:
            raise LabError(f"{probe.host} needs two addresses to observe NATs, not {addresses}")
        first, second = addresses[0], addresses[1]
        return cls(
            probe.open(first, ports[0]),
            probe.open(first, ports[1]),
            probe.open(second, ports[0]),
        )

    def __iter__(self) -> Iterator[ProbeSocket]:
        return iter((self.primary, self.other_port, self.other_address))


def _send_out(inside: ProbeSocket, target: ProbeSocket) -> Address | None:
    """Send one packet out; the source address `target` saw, None if none arrived."""
    token = _token("out")
    inside.send(target.local, token)
    return target.receive([token], ARRIVAL_S).get(token)


def mapped_address(inside: ProbeSocket, vantage: Vantage) -> Address:
    """`inside`'s public mapping as the primary vantage socket sees it."""
    seen = _send_out(inside, vantage.primary)
    if seen is None:
        raise LabError(
            f"nothing from {inside.probe.host} reached {format_address(vantage.primary.local)}"
        )
    return seen


@dataclass(frozen=True, slots=True)
class MappingObservation:
    """The public address each vantage socket saw for one inside socket."""

    local: Address
    primary: Address | None
    other_port: Address | None
    other_address: Address | None

    @property
    def behaviour(self) -> Behaviour | None:
        """The RFC 4787 mapping behaviour seen; None if a packet got lost."""
        if None in (self.primary, self.other_port, self.other_address):
            return None
        if self.primary == self.other_port == self.other_address:
            return Behaviour.ENDPOINT_INDEPENDENT
        if self.primary == self.other_port:
            return Behaviour.ADDRESS_DEPENDENT
        return Behaviour.ADDRESS_AND_PORT_DEPENDENT

    @property
    def port_preserved(self) -> bool:
        return self.primary is not None and self.primary[1] == self.local[1]


def observe_mapping(inside: Probe, vantage: Vantage) -> MappingObservation:
    sock = inside.open()
    seen = [_send_out(sock, target) for target in vantage]
    return MappingObservation(sock.local, seen[0], seen[1], seen[2])


@dataclass(frozen=True, slots=True)
class FilteringObservation:
    """Which packets got in after one packet out to the primary vantage socket."""

    mapped: Address
    same_endpoint: bool
    other_port: bool
    other_address: bool

    @property
    def behaviour(self) -> Behaviour | None:
        """The RFC 4787 filtering behaviour seen; None if even the reply was dropped or
        another address got in where another port did not."""
        if not self.same_endpoint or (self.other_address and not self.other_port):
            return None
        if self.other_address:
            return Behaviour.ENDPOINT_INDEPENDENT
        if self.other_port:
            return Behaviour.ADDRESS_DEPENDENT
        return Behaviour.ADDRESS_AND_PORT_DEPENDENT


def observe_filtering(inside: Probe, vantage: Vantage) -> FilteringObservation:
    sock = inside.open()
    mapped = mapped_address(sock, vantage)
    other_address, other_port, same = _token("in"), _token("in"), _token("in")
    vantage.other_address.send(mapped, other_address)
    vantage.other_port.send(mapped, other_port)
    vantage.primary.send(mapped, same)  # last: once it is in, the others had their chance
    got = sock.receive([other_address, other_port, same], ARRIVAL_S, last=same)
    return FilteringObservation(mapped, same in got, other_port in got, other_address in got)


def observe_unsolicited(inside: Probe, vantage: Vantage, public_address: str) -> bool:
    """Whether a packet reaches a socket that never sent anything, sent to its port at
    `public_address` (on a NAT: no mapping exists, so only `none` lets it in)."""
    sock = inside.open()
    token = _token("unsolicited")
    vantage.primary.send((public_address, sock.local[1]), token)
    return token in sock.receive([token], DROP_S)


@dataclass(frozen=True, slots=True)
class HairpinObservation:
    receiver_mapped: Address
    sender_mapped: Address
    #: Where the receiver saw the packet come from; None when it did not arrive.
    seen_from: Address | None


def observe_hairpin(receiver: Probe, sender: Probe, vantage: Vantage) -> HairpinObservation:
    """Both learn their mapping from the vantage, then `sender` sends to the receiver's."""
    inbox = receiver.open()
    receiver_mapped = mapped_address(inbox, vantage)
    outbox = sender.open()
    sender_mapped = mapped_address(outbox, vantage)
    token = _token("hairpin")
    outbox.send(receiver_mapped, token)
    seen = inbox.receive([token], ARRIVAL_S).get(token)
    return HairpinObservation(receiver_mapped, sender_mapped, seen)


@dataclass(frozen=True, slots=True)
class ExpiryObservation:
    mapped: Address
    #: A reply right after the packet out got in (the binding was there).
    reply_before: bool
    #: The same reply after `waited` seconds of silence got in (the binding outlived it).
    reply_after: bool
    #: The mapping a new packet out got after the wait.
    mapped_after: Address
    waited: float


def observe_expiry(inside: Probe, vantage: Vantage, silence_s: float) -> ExpiryObservation:
    """Send out, check a reply gets in, stay silent `silence_s`, check again."""
    sock = inside.open()
    mapped = mapped_address(sock, vantage)
    before = _token("before")
    vantage.primary.send(mapped, before)
    reply_before = before in sock.receive([before], ARRIVAL_S)
    time.sleep(silence_s)
    after = _token("after")
    vantage.primary.send(mapped, after)
    reply_after = after in sock.receive([after], DROP_S)
    return ExpiryObservation(
        mapped, reply_before, reply_after, mapped_address(sock, vantage), silence_s
    )


@dataclass(frozen=True, slots=True)
class Check:
    """One line of proof: what was checked, whether it held, what was seen."""

    label: str
    ok: bool
    detail: str


def check_host(lab: Lab, host: str, server: str = "server") -> list[Check]:
    """Probe the NAT in front of `host` from `server` and compare with its profile."""
    spec = lab.nat(host)
    profile = spec.profile if spec else Profile.NONE
    with lab.probe(server) as outside, lab.probe(host) as inside:
        vantage = Vantage.open(outside, lab.addresses(server))
        mapping = observe_mapping(inside, vantage)
        filtering = observe_filtering(inside, vantage)
        unsolicited = observe_unsolicited(inside, vantage, lab.public_address(host))
    return [
        _mapping_check(profile, mapping, lab.address(host)),
        _filtering_check(profile, filtering),
        Check(
            "unsolicited packet",
            unsolicited == (profile is Profile.NONE),
            "gets in" if unsolicited else "dropped (no mapping yet)",
        ),
    ]


def _mapping_check(profile: Profile, seen: MappingObservation, address: str) -> Check:
    sources = [seen.primary, seen.other_port, seen.other_address]
    if profile is Profile.NONE:
        untouched = all(source == (address, seen.local[1]) for source in sources)
        return Check("no translation", untouched, f"the server saw {_addresses(sources)}")
    behaviour = seen.behaviour
    if behaviour is Behaviour.ENDPOINT_INDEPENDENT and seen.primary is not None:
        kept = "port kept" if seen.port_preserved else "port changed"
        detail = f"all three server sockets saw {format_address(seen.primary)} ({kept})"
    else:
        detail = f"the three server sockets saw {_addresses(sources)}"
    return Check(f"mapping {behaviour or 'lost packets'}", behaviour == profile.mapping, detail)


def _filtering_check(profile: Profile, seen: FilteringObservation) -> Check:
    expected = profile.filtering or Behaviour.ENDPOINT_INDEPENDENT

    def fate(arrived: bool) -> str:
        return "got in" if arrived else "dropped"

    detail = (
        f"after one packet out, the reply {fate(seen.same_endpoint)}; from another port: "
        f"{fate(seen.other_port)}; from another address: {fate(seen.other_address)}"
    )
    behaviour = seen.behaviour
    return Check(f"filtering {behaviour or 'broken'}", behaviour == expected, detail)


def _addresses(sources: list[Address | None]) -> str:
    return ", ".join(format_address(source) if source else "nothing" for source in sources)
