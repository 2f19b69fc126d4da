"""The nftables rulesets of a lab NAT, as text for `nft -f -` (pure, so unit-tested).

Every profile keeps one table, `ip peerline`, in the NAT's own namespace:

- `mapping`, a dynamic map external UDP port -> inside address . port, filled after
  source NAT (filter chain in postrouting at priority 200) from what the inside sent.
  It is what full-cone and restricted-cone filtering and hairpinning look up; the
  kernel's conntrack alone filters by address and port.
- `contacted` (restricted-cone only): external port . remote address the inside has
  sent to, so unsolicited packets are let in only from those addresses.
- Mapping: `masquerade` is endpoint-independent and port-preserving; with
  `random,fully-random` it draws a new port per destination (symmetric).
- Inbound packets that conntrack does not know and no rule translated are dropped,
  silently (no ICMP port unreachable from the NAT itself).
"""

from ipaddress import IPv4Address

from peerline.lab.profiles import NatSpec, Profile

#: The NAT's interface names: its uplink and its LAN.
WAN = "wan"
LAN = "lan"
#: The name of the lab's table in every namespace that has one.
TABLE = "peerline"
#: Binding lifetime of the map and set when the user keeps the kernel's UDP timeouts:
#: the kernel's UDP stream timeout (nf_conntrack_udp_timeout_stream).
KERNEL_UDP_STREAM_TIMEOUT_S = 120


def nat_ruleset(nat: NatSpec, public: IPv4Address) -> str:
    """The whole `ip peerline` table for a NAT with public address `public`."""
    timeout = nat.udp_timeout or KERNEL_UDP_STREAM_TIMEOUT_S
    random = " random,fully-random" if nat.profile is Profile.SYMMETRIC else ""
    restricted = nat.profile is Profile.RESTRICTED_CONE

    sets = [
        _dynamic("map mapping", "type inet_service : ipv4_addr . inet_service", timeout),
    ]
    inbound: list[str] = []
    remember = [
        f'oifname "{WAN}" update @mapping '
        "{ udp sport : ct original ip saddr . ct original proto-src }",
    ]
    if restricted:
        sets.append(_dynamic("set contacted", "type inet_service . ipv4_addr", timeout))
        remember.append(f'oifname "{WAN}" update @contacted {{ udp sport . ip daddr }}')
        inbound.append(
            f'iifname "{WAN}" udp dport . ip saddr @contacted dnat ip to udp dport map @mapping'
        )
    elif nat.profile is Profile.FULL_CONE:
        inbound.append(f'iifname "{WAN}" dnat ip to udp dport map @mapping')

    outbound = [f'oifname "{WAN}" masquerade{random}']
    # Silent, as NATs are: no ICMP port unreachable for a port nobody maps.
    local = [f'iifname "{WAN}" ct state new meta l4proto {{ tcp, udp }} drop']
    if nat.hairpin:
        # From the LAN to our public address: to the inside owner of the port, and
        # from our public address, so the receiver sees the sender's public mapping.
        inbound.append(f'iifname "{LAN}" ip daddr {public} dnat ip to udp dport map @mapping')
        outbound.append(
            f'iifname "{LAN}" oifname "{LAN}" ct status dnat snat ip to {public}{random}'
        )
    else:
        local.append(f'iifname "{LAN}" ip daddr {public} meta l4proto {{ tcp, udp }} drop')

    chains = [
        _chain("prerouting", "type nat hook prerouting priority dstnat", inbound),
        _chain("postrouting", "type nat hook postrouting priority srcnat", outbound),
        _chain("remember", "type filter hook postrouting priority 200", remember),
        _chain(
            "forward",
            "type filter hook forward priority filter",
            [
                f'iifname "{WAN}" ct state new ct status dnat accept',
                f'iifname "{WAN}" ct state new drop',
            ],
        ),
        _chain("input", "type filter hook input priority filter", local),
    ]
    return _table("ip", TABLE, [*sets, *chains])


def loss_ruleset(interface: str, loss_percent: float) -> str:
    """An `inet peerline_loss` table dropping `loss_percent` of the IP packets in each
    direction of `interface`, before conntrack sees them (the kernel lacks netem here
    and there, nftables is everywhere)."""
    threshold = round(loss_percent * 100)  # out of 10 000: 0.01 % steps
    drop = "drop" if threshold >= 10000 else f"numgen random mod 10000 < {threshold} drop"
    chains = [
        _chain(
            "incoming",
            "type filter hook prerouting priority -300",
            [f'iifname "{interface}" {drop}'],
        ),
        _chain(
            "outgoing",
            "type filter hook postrouting priority 300",
            [f'oifname "{interface}" {drop}'],
        ),
    ]
    return _table("inet", f"{TABLE}_loss", chains)


def _dynamic(header: str, kind: str, timeout: int) -> str:
    return f"  {header} {{\n    {kind}\n    flags dynamic,timeout\n    timeout {timeout}s\n  }}"


def _chain(name: str, hook: str, rules: list[str]) -> str:
    body = "".join(f"    {rule}\n" for rule in rules)
    return f"  chain {name} {{\n    {hook}; policy accept;\n{body}  }}"


def _table(family: str, name: str, parts: list[str]) -> str:
    return f"table {family} {name} {{\n" + "\n".join(parts) + "\n}\n"
