"""Which peers a TURN relay may talk to: deny the special-purpose ranges by default.

Relays have been abused as open proxies into the networks behind them (cloud
metadata at 169.254.169.254, loopback services, RFC 1918 hosts). So every peer
address is first normalised — an IPv4 address hidden in IPv6 (IPv4-mapped,
IPv4-compatible, NAT64, 6to4, Teredo) is judged as the IPv4 address it reaches —
then checked against the special-purpose registries. An explicit allow-list
(for labs and private deployments) wins over every default deny, the server's
own addresses included.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refusal(StrEnum):
    """Why a peer address was refused (also the label of the refusal counter)."""

    SPECIAL_PURPOSE = "special-purpose"
    SERVER_ADDRESS = "server-address"
    UNSPECIFIED = "unspecified"


#: IPv4 special-purpose ranges (IANA registry, RFC 6890 and successors).
DENIED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.31.196.0/24",  # AS112
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)

#: IPv6 special-purpose ranges; the IPv4-embedding ones are unwrapped before this check.
DENIED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID...)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if it embeds one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address: where the packets end up
    packed = address.packed
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(packed[-4:])
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(packed[-4:])
    return None


def normalise(address: IPAddress) -> list[IPAddress]:
    """The address itself plus the IPv4 address it embeds, if any, outermost first."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            found.append(inner)
    return found


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """Default-deny of special-purpose peers, with an allow-list that wins."""

    allow: tuple[IPNetwork, ...] = ()
    server_addresses: frozenset[IPAddress] = field(default_factory=frozenset)

    @classmethod
    def build(cls, allow: Iterable[str], server_addresses: Iterable[str]) -> "PeerPolicy":
        return cls(
            allow=tuple(ipaddress.ip_network(net, strict=False) for net in allow),
            server_addresses=frozenset(ipaddress.ip_address(ip) for ip in server_addresses),
        )

    def check(self, ip: str) -> Refusal | None:
        """None if relaying to `ip` is allowed, else why not."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return Refusal.UNSPECIFIED
        forms = normalise(address)
        if self.allow and any(
            form.version == net.version and form in net for form in forms for net in self.allow
        ):
            return None
        for form in reversed(forms):  # the embedded IPv4 address names the real target
            if form in self.server_addresses:
                return Refusal.SERVER_ADDRESS
            if form.is_unspecified:
                return Refusal.UNSPECIFIED
            denied: tuple[IPNetwork, ...] = DENIED_V4 if form.version == 4 else DENIED_V6
            if any(form in net for net in denied):
                return Refusal.SPECIAL_PURPOSE
        return None
