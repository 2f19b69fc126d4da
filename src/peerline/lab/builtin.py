"""The built-in topologies, with fixed names and addresses that tests and docs rely on.

`pair`: server 203.0.113.1 and .2; nat-a 203.0.113.10 (LAN 10.1.0.0/24, peer-a .2);
nat-b 203.0.113.20 (LAN 10.2.0.0/24, peer-b .2).
`same-nat`: peer-a 10.1.0.2 and peer-b 10.1.0.3 both behind nat-a.
`cgnat`: peer-a 192.168.1.2 behind home-a (100.64.0.2) behind cgn (203.0.113.30,
carrier LAN 100.64.0.0/10); peer-b behind nat-b as in `pair`.
A NAT given profile `none` is left out and its peers sit where it would have been.
"""

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from peerline.errors import UsageError
from peerline.lab.profiles import NatSpec, Profile
from peerline.lab.topology import DEFAULT_INTERNET, INTERNET, Host, Topology

#: Which NATs each built-in topology lets the user choose (`--nat-a`, `--nat-b`, `--cgn`).
BUILTIN_NATS: dict[str, tuple[str, ...]] = {
    "pair": ("nat-a", "nat-b"),
    "same-nat": ("nat-a",),
    "cgnat": ("nat-a", "cgn", "nat-b"),
}
#: What a NAT is when the user does not say: what a Linux home router does by default.
DEFAULT_NAT = NatSpec(Profile.PORT_RESTRICTED_CONE)

SERVER = Host("server", INTERNET, (IPv4Address("203.0.113.1"), IPv4Address("203.0.113.2")))


def _site(
    nat_name: str,
    nat: NatSpec,
    *,
    network: str,
    address: str,
    lan: str,
    peers: Mapping[str, str],
) -> list[Host]:
    """A NAT at `address` in `network` with `peers` behind it; with `none`, the peers
    themselves take `address` (and the ones after it) in `network`."""
    if not nat.is_nat:
        first = IPv4Address(address)
        return [Host(name, network, (first + index,)) for index, name in enumerate(peers)]
    router = Host(nat_name, network, (IPv4Address(address),), nat=nat, lan=IPv4Network(lan))
    inside = [Host(name, nat_name, (IPv4Address(peer),)) for name, peer in peers.items()]
    return [router, *inside]


def _nat_a_site(nat: NatSpec, peers: Mapping[str, str]) -> list[Host]:
    return _site(
        "nat-a", nat, network=INTERNET, address="203.0.113.10", lan="10.1.0.0/24", peers=peers
    )


def _nat_b_site(nat: NatSpec) -> list[Host]:
    peers = {"peer-b": "10.2.0.2"}
    return _site(
        "nat-b", nat, network=INTERNET, address="203.0.113.20", lan="10.2.0.0/24", peers=peers
    )


def pair(nat_a: NatSpec = DEFAULT_NAT, nat_b: NatSpec = DEFAULT_NAT) -> Topology:
    """A server and two peers, each behind its own NAT."""
    hosts = [
        SERVER,
        *_nat_a_site(nat_a, {"peer-a": "10.1.0.2"}),
        *_nat_b_site(nat_b),
    ]
    return Topology("pair", tuple(hosts), DEFAULT_INTERNET)


def same_nat(nat_a: NatSpec = DEFAULT_NAT) -> Topology:
    """A server and two peers behind one NAT: where hairpinning matters."""
    peers = {"peer-a": "10.1.0.2", "peer-b": "10.1.0.3"}
    hosts = [SERVER, *_nat_a_site(nat_a, peers)]
    return Topology("same-nat", tuple(hosts), DEFAULT_INTERNET)


def cgnat(
    nat_a: NatSpec = DEFAULT_NAT, cgn: NatSpec = DEFAULT_NAT, nat_b: NatSpec = DEFAULT_NAT
) -> Topology:
    """peer-a behind a home NAT (`home-a`, chosen by `nat_a`) behind a carrier-grade NAT."""
    hosts = [SERVER]
    home_network, home_address = INTERNET, "203.0.113.30"
    if cgn.is_nat:
        carrier_lan = IPv4Network("100.64.0.0/10")
        hosts.append(Host("cgn", INTERNET, (IPv4Address(home_address),), nat=cgn, lan=carrier_lan))
        home_network, home_address = "cgn", "100.64.0.2"
    hosts += _site(
        "home-a",
        nat_a,
        network=home_network,
        address=home_address,
        lan="192.168.1.0/24",
        peers={"peer-a": "192.168.1.2"},
    )
    hosts += _nat_b_site(nat_b)
    return Topology("cgnat", tuple(hosts), DEFAULT_INTERNET)


def builtin(name: str, nats: Mapping[str, NatSpec]) -> Topology:
    """The built-in topology `name` with the NATs the user chose (keyed `nat-a`, `nat-b`,
    `cgn`); a NAT the topology does not have is a UsageError, not silently ignored."""
    if name not in BUILTIN_NATS:
        known = ", ".join(BUILTIN_NATS)
        raise UsageError(f"unknown topology {name!r} (built-in: {known}; or a .toml file)")
    allowed = BUILTIN_NATS[name]
    for key in nats:
        if key not in allowed:
            options = ", ".join(f"--{option}" for option in allowed)
            raise UsageError(f"topology {name!r} has no {key}; it takes {options}")

    def chosen(key: str) -> NatSpec:
        return nats.get(key, DEFAULT_NAT)

    if name == "pair":
        return pair(chosen("nat-a"), chosen("nat-b"))
    if name == "same-nat":
        return same_nat(chosen("nat-a"))
    return cgnat(chosen("nat-a"), chosen("cgn"), chosen("nat-b"))
