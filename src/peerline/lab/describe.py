"""The lab in words: the host table `lab up`, `lab status` and the demo print, and the
JSON `lab status --json` prints."""

from typing import Any

from peerline.lab.builder import host_namespace
from peerline.lab.topology import INTERNET, Host, Topology


def role(topology: Topology, host: Host) -> str:
    """What `host` is, in one phrase: where it sits and what it does."""
    if host.nat is not None:
        where = "" if host.network == INTERNET else f", behind {host.network}"
        text = f"NAT {host.nat}, LAN {host.lan} (it is {host.lan_address}){where}"
    elif host.network == INTERNET:
        text = f"on the Internet ({topology.internet})"
    else:
        text = f"behind {host.network}, seen as {topology.public_address(host)}"
    if host.link.is_shaped:
        text += f"; link: {host.link}"
    return text


def host_rows(topology: Topology) -> list[tuple[str, str, str]]:
    """(name, addresses, role) per host, in the topology's order."""
    return [
        (host.name, ", ".join(str(a) for a in host.addresses), role(topology, host))
        for host in topology.hosts
    ]


def table(rows: list[tuple[str, str, str]], indent: str = "  ") -> list[str]:
    """Rows as aligned text lines."""
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    return [
        f"{indent}{name:<{widths[0]}}  {addresses:<{widths[1]}}  {what}"
        for name, addresses, what in rows
    ]


def as_json(topology: Topology, prefix: str) -> list[dict[str, Any]]:
    """Per host: what scripts need to reach it, in plain JSON types."""
    hosts = []
    for host in topology.hosts:
        gateway = topology.gateway(host)
        nat = topology.nats_in_front(host)
        hosts.append(
            {
                "name": host.name,
                "namespace": host_namespace(prefix, host.name),
                "addresses": [str(address) for address in host.addresses],
                "network": host.network,
                "gateway": str(gateway) if gateway else None,
                "public_address": str(topology.public_address(host)),
                "behind": [outer.name for outer in nat],
                "nat": str(host.nat) if host.nat else None,
                "lan": str(host.lan) if host.lan else None,
            }
        )
    return hosts
