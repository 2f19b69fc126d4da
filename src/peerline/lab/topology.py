"""What a lab looks like: hosts, the networks they sit in, and the NATs between them.

Pure data, validated when built, so a topology that cannot work is refused with one
clear line before any namespace exists. The lab is a tree: the public segment (the
Internet) at the root, each NAT owning one LAN, every host attached by one uplink to
the Internet or to a NAT's LAN. That covers home NATs, double NAT (carrier-grade NAT
in front of a home NAT) and several peers behind one NAT.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from peerline.errors import UsageError
from peerline.lab.profiles import LinkShape, NatSpec

#: The public segment's network name, as topology files write it.
INTERNET = "internet"
#: The public segment of every built-in topology (TEST-NET-3, RFC 5737).
DEFAULT_INTERNET = IPv4Network("203.0.113.0/24")

#: Host names become namespace names and bridge port names (15 characters at most).
_NAME = re.compile(r"[a-z][a-z0-9-]{0,14}")
#: Names the lab uses itself: the Internet's switch, loopback, NAT LAN switches (`*-lan`).
_RESERVED = frozenset({INTERNET, "inet", "lo"})
_MAX_HOSTS = 64


def check_name(name: str, what: str = "host") -> str:
    """`name` if it can name a host (and so a namespace and an interface), else UsageError."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"bad {what} name {name!r}: use 1-15 lowercase letters, digits and '-', "
            "starting with a letter"
        )
    if name in _RESERVED or name.endswith("-lan"):
        raise UsageError(f"{what} name {name!r} is reserved by the lab (also: names ending -lan)")
    return name


@dataclass(frozen=True, slots=True)
class Host:
    """One namespace: a server or peer, or a NAT router when `nat` is set."""

    name: str
    #: Where its uplink sits: `INTERNET` or the name of the NAT whose LAN it is in.
    network: str
    addresses: tuple[IPv4Address, ...]
    #: Set for NAT routers: how this router translates.
    nat: NatSpec | None = None
    #: Set for NAT routers: the inside network; the router itself takes its `.1`.
    lan: IPv4Network | None = None
    #: Impairments of the uplink (both directions).
    link: LinkShape = field(default_factory=LinkShape)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.addresses:
            raise UsageError(f"host {self.name!r} needs at least one address")
        if (self.nat is None) != (self.lan is None):
            raise UsageError(f"NAT {self.name!r} needs both a profile and a LAN")
        if self.nat is not None:
            if not self.nat.is_nat:
                raise UsageError(
                    f"NAT {self.name!r} cannot have profile 'none': attach the hosts "
                    "behind it to its network instead"
                )
            if len(self.addresses) != 1:
                raise UsageError(f"NAT {self.name!r} has exactly one public-side address")
        if self.lan is not None and self.lan.prefixlen > 30:
            raise UsageError(f"LAN {self.lan} of {self.name!r} is too small (at most /30)")

    @property
    def is_nat(self) -> bool:
        return self.nat is not None

    @property
    def address(self) -> IPv4Address:
        """The first (primary) address of the uplink."""
        return self.addresses[0]

    @property
    def lan_address(self) -> IPv4Address:
        """A NAT's own address in its LAN (`.1`), the default gateway of the hosts there."""
        if self.lan is None:
            raise ValueError(f"{self.name} is not a NAT")
        return self.lan.network_address + 1


@dataclass(frozen=True, slots=True)
class Topology:
    """A whole lab; validated as a whole when built."""

    name: str
    hosts: tuple[Host, ...]
    internet: IPv4Network = DEFAULT_INTERNET

    def __post_init__(self) -> None:
        _validate(self)
        # One canonical order (in each network its plain hosts, then each NAT followed by
        # what is behind it), so tables read like the tree and a topology read back from
        # a file equals the one written.
        object.__setattr__(self, "hosts", tuple(_tree_order(self.hosts, INTERNET)))

    def host(self, name: str) -> Host:
        """The host called `name`, or a UsageError that lists the hosts."""
        for host in self.hosts:
            if host.name == name:
                return host
        names = ", ".join(host.name for host in self.hosts)
        raise UsageError(f"no host {name!r} in the lab (hosts: {names})")

    @property
    def nats(self) -> tuple[Host, ...]:
        return tuple(host for host in self.hosts if host.is_nat)

    def members(self, network: str) -> tuple[Host, ...]:
        """The hosts whose uplink is in `network` (INTERNET or a NAT's name)."""
        return tuple(host for host in self.hosts if host.network == network)

    def subnet(self, network: str) -> IPv4Network:
        if network == INTERNET:
            return self.internet
        lan = self.host(network).lan
        if lan is None:
            raise UsageError(f"{network!r} is not a NAT, so hosts cannot sit behind it")
        return lan

    def gateway(self, host: Host) -> IPv4Address | None:
        """The default route of `host`: its NAT's LAN address; None on the Internet."""
        if host.network == INTERNET:
            return None
        return self.host(host.network).lan_address

    def nats_in_front(self, host: Host) -> tuple[Host, ...]:
        """The NATs `host`'s packets cross on the way to the Internet, nearest first."""
        chain: list[Host] = []
        network = host.network
        while network != INTERNET:
            nat = self.host(network)
            chain.append(nat)
            network = nat.network
        return tuple(chain)

    def public_address(self, host: Host) -> IPv4Address:
        """The source address the Internet sees on `host`'s packets."""
        chain = self.nats_in_front(host)
        return chain[-1].address if chain else host.address

    def with_access_links(self, shape: LinkShape) -> "Topology":
        """This topology with `shape` on every link into the Internet (each site's access)."""
        hosts = tuple(
            replace(host, link=shape) if host.network == INTERNET else host for host in self.hosts
        )
        return replace(self, hosts=hosts)


def _validate(topology: Topology) -> None:
    if not topology.hosts:
        raise UsageError(f"topology {topology.name!r} has no hosts")
    if len(topology.hosts) > _MAX_HOSTS:
        raise UsageError(f"topology {topology.name!r} has more than {_MAX_HOSTS} hosts")
    names = [host.name for host in topology.hosts]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"host {name!r} is defined twice")
    by_name = {host.name: host for host in topology.hosts}
    for host in topology.hosts:
        upstream = by_name.get(host.network)
        if host.network != INTERNET and (upstream is None or not upstream.is_nat):
            raise UsageError(
                f"host {host.name!r} sits in network {host.network!r}, which is neither "
                f"{INTERNET!r} nor a NAT of this topology"
            )
        _check_reaches_internet(host, by_name)
    for network in [INTERNET, *(nat.name for nat in topology.nats)]:
        _check_addresses(topology, network)
    for nat in topology.nats:
        _check_lan(topology, nat)


def _tree_order(hosts: tuple[Host, ...], network: str) -> Iterator[Host]:
    members = [host for host in hosts if host.network == network]
    yield from (host for host in members if not host.is_nat)
    for nat in (host for host in members if host.is_nat):
        yield nat
        yield from _tree_order(hosts, nat.name)


def _check_reaches_internet(host: Host, by_name: dict[str, Host]) -> None:
    seen = [host.name]
    network = host.network
    while network != INTERNET:
        if network in seen:
            loop = " -> ".join([*seen, network])
            raise UsageError(f"NATs sit behind each other in a loop: {loop}")
        seen.append(network)
        network = by_name[network].network


def _check_addresses(topology: Topology, network: str) -> None:
    subnet = topology.subnet(network)
    taken: dict[IPv4Address, str] = {}
    if network != INTERNET:
        taken[topology.host(network).lan_address] = f"{network} (the NAT itself)"
    for host in topology.members(network):
        for address in host.addresses:
            if address not in subnet or address in (
                subnet.network_address,
                subnet.broadcast_address,
            ):
                raise UsageError(
                    f"address {address} of {host.name!r} is not a host address of "
                    f"{network!r} ({subnet})"
                )
            if address in taken:
                raise UsageError(f"address {address} is used by {taken[address]} and {host.name!r}")
            taken[address] = repr(host.name)


def _check_lan(topology: Topology, nat: Host) -> None:
    """A LAN may repeat a sibling's (two homes both on 192.168.1.0/24) but not an upstream's."""
    assert nat.lan is not None
    upstream = [topology.internet] + [
        outer.lan for outer in topology.nats_in_front(nat) if outer.lan is not None
    ]
    for outer in upstream:
        if nat.lan.overlaps(outer):
            raise UsageError(f"LAN {nat.lan} of {nat.name!r} overlaps {outer} on its way out")


def walk(topology: Topology) -> Iterator[tuple[str, tuple[Host, ...]]]:
    """Each network (INTERNET first, then each NAT's LAN) with the hosts in it."""
    yield INTERNET, topology.members(INTERNET)
    for nat in topology.nats:
        yield nat.name, topology.members(nat.name)
