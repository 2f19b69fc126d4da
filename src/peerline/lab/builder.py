"""From a `Topology` to namespaces, veth links, bridges, addresses, routes, NAT rules
and qdiscs: first a `Plan` (pure, unit-tested), then the tool calls that carry it out.

Each host is a namespace `PREFIX+NAME`. Each network is a bridge in its own namespace
(`PREFIX+inet` for the Internet, `PREFIX+NAT-lan` for a NAT's LAN), whose ports are
named after the hosts. Every veth pair is created with both ends already inside lab
namespaces, so nothing ever appears in the root namespace, even for a moment.
"""

from dataclasses import dataclass, field

from peerline.lab import netns, nftables, shaping, tools
from peerline.lab.topology import INTERNET, Host, Topology, walk

#: A host's uplink: a NAT's is its WAN side; everyone else's is eth0.
HOST_UPLINK = "eth0"
#: The bridge inside every network's namespace.
BRIDGE = "br_lab"


def host_namespace(prefix: str, host: str) -> str:
    return f"{prefix}{host}"


def network_namespace(prefix: str, network: str) -> str:
    """The namespace holding the bridge of `network` (INTERNET or a NAT's name)."""
    return f"{prefix}inet" if network == INTERNET else f"{prefix}{network}-lan"


def uplink(host: Host) -> str:
    return nftables.WAN if host.is_nat else HOST_UPLINK


@dataclass(slots=True)
class Plan:
    """Everything the builder will do, in order, as the text each tool is fed."""

    namespaces: list[str] = field(default_factory=list)
    #: `ip -batch` lines run from the root namespace; each names both ends' namespaces.
    veths: list[str] = field(default_factory=list)
    #: Per namespace, `ip -batch` lines: links up, bridge ports, addresses, routes.
    interfaces: dict[str, list[str]] = field(default_factory=dict)
    #: Per namespace, `sysctl -w` arguments.
    sysctls: dict[str, list[str]] = field(default_factory=dict)
    #: Per namespace, an `nft -f -` ruleset.
    rulesets: dict[str, str] = field(default_factory=dict)
    #: Per namespace, `tc -batch` lines.
    qdiscs: dict[str, list[str]] = field(default_factory=dict)

    def add_ip(self, namespace: str, *lines: str) -> None:
        self.interfaces.setdefault(namespace, []).extend(lines)


def plan(topology: Topology, prefix: str) -> Plan:
    """The plan that builds `topology` with namespaces named `prefix...`."""
    result = Plan()
    for network, members in walk(topology):
        switch = network_namespace(prefix, network)
        result.namespaces.append(switch)
        result.add_ip(
            switch,
            "link set dev lo up",
            f"link add {BRIDGE} type bridge",
            f"link set dev {BRIDGE} up",
        )
        subnet = topology.subnet(network)
        if network != INTERNET:  # the NAT's LAN side is a port of this bridge too
            nat = topology.host(network)
            _connect(result, switch, host_namespace(prefix, nat.name), nat.name, nftables.LAN)
            result.add_ip(
                host_namespace(prefix, nat.name),
                f"link set dev {nftables.LAN} up",
                f"addr add {nat.lan_address}/{subnet.prefixlen} dev {nftables.LAN}",
            )
        for host in members:
            namespace = host_namespace(prefix, host.name)
            device = uplink(host)
            _connect(result, switch, namespace, host.name, device)
            result.add_ip(
                namespace,
                *(f"addr add {a}/{subnet.prefixlen} dev {device}" for a in host.addresses),
            )
            gateway = topology.gateway(host)
            if gateway is not None:
                result.add_ip(namespace, f"route add default via {gateway} dev {device}")
            _shape(result, host, namespace, switch)
    for host in topology.hosts:
        namespace = host_namespace(prefix, host.name)
        result.namespaces.append(namespace)
        result.interfaces[namespace].insert(0, "link set dev lo up")
        if host.nat is not None:
            forwarding = ["net.ipv4.ip_forward=1"]
            if host.nat.udp_timeout is not None:
                forwarding += [
                    f"net.netfilter.nf_conntrack_udp_timeout={host.nat.udp_timeout}",
                    f"net.netfilter.nf_conntrack_udp_timeout_stream={host.nat.udp_timeout}",
                ]
            result.sysctls[namespace] = forwarding
            rules = nftables.nat_ruleset(host.nat, host.address)
            result.rulesets[namespace] = rules + result.rulesets.get(namespace, "")
    return result


def _connect(result: Plan, switch: str, namespace: str, port: str, device: str) -> None:
    """A veth from `device` in `namespace` to bridge port `port` in `switch`."""
    result.veths.append(
        f"link add {device} netns {namespace} type veth peer name {port} netns {switch}"
    )
    result.add_ip(switch, f"link set dev {port} master {BRIDGE}", f"link set dev {port} up")
    result.add_ip(namespace, f"link set dev {device} up")


def _shape(result: Plan, host: Host, namespace: str, switch: str) -> None:
    """Impair `host`'s uplink: qdiscs at both ends, loss as nftables in the host."""
    device = uplink(host)
    for where, dev in ((namespace, device), (switch, host.name)):
        lines = shaping.qdisc_lines(dev, host.link)
        if lines:
            result.qdiscs.setdefault(where, []).extend(lines)
    if host.link.loss_percent:
        loss = nftables.loss_ruleset(device, host.link.loss_percent)
        result.rulesets[namespace] = result.rulesets.get(namespace, "") + loss


def build(topology: Topology, prefix: str) -> None:
    """Carry out the plan; on any failure (or Ctrl-C) remove what was built, then raise."""
    steps = plan(topology, prefix)
    try:
        netns.add(steps.namespaces)
        tools.run(
            ["ip", "-batch", "-"],
            stdin="".join(f"{line}\n" for line in steps.veths),
            what="creating veth links",
        )
        for namespace, lines in steps.interfaces.items():
            tools.run(
                ["ip", "-n", namespace, "-batch", "-"],
                stdin="".join(f"{line}\n" for line in lines),
                what=f"configuring interfaces in {namespace}",
            )
        for namespace, settings in steps.sysctls.items():
            tools.run(
                ["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", *settings],
                what=f"setting sysctls in {namespace}",
            )
        for namespace, ruleset in steps.rulesets.items():
            tools.run(
                ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
                stdin=ruleset,
                what=f"loading nftables rules in {namespace}",
            )
        for namespace, lines in steps.qdiscs.items():
            _add_qdiscs(namespace, lines)
    except BaseException:
        teardown(prefix)
        raise


def _add_qdiscs(namespace: str, lines: list[str]) -> None:
    try:
        tools.run(
            ["tc", "-n", namespace, "-batch", "-"],
            stdin="".join(f"{line}\n" for line in lines),
            what=f"shaping links in {namespace}",
        )
    except tools.LabError as error:
        if "netem" in " ".join(lines) and "qdisc kind is unknown" in str(error):
            raise tools.LabError(
                "--delay needs the kernel's netem qdisc (sch_netem), which this kernel does "
                "not have; --loss and --rate work without it"
            ) from None
        raise


def teardown(prefix: str) -> list[str]:
    """Remove every namespace named `prefix...` after ending the processes in them;
    idempotent, and it also clears what a killed earlier run left. Returns the names."""
    names = netns.list_namespaces(prefix)
    netns.end_processes(names)
    netns.delete(names)
    return names
