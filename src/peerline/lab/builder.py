"""From a `Topology` to namespaces, veth links, bridges, addresses, routes, NAT rules,
qdiscs and delay lines: first a `Plan` (pure, unit-tested), then the tool calls (and
the delay-line processes) that carry it out.

Each host is a namespace `PREFIX+NAME`. Each network is a bridge in its own namespace
(`PREFIX+inet` for the Internet, `PREFIX+NAT-lan` for a NAT's LAN), whose ports are
named after the hosts. Every veth pair is created with both ends already inside lab
namespaces, so nothing ever appears in the root namespace, even for a moment.
"""

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from peerline.lab import delayline, netns, nftables, shaping, state, tools
from peerline.lab.topology import INTERNET, Host, Topology, walk

#: A host's uplink: a NAT's is its WAN side; everyone else's is eth0.
HOST_UPLINK = "eth0"
#: The bridge inside every network's namespace.
BRIDGE = "br_lab"
#: How long a delay line may take to start (a Python start on a busy machine).
DELAY_LINE_START_S = 20.0
_IPTABLES_RESTORE = "iptables-restore"


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
    #: Per namespace, the delay (ms) of the delay line that runs there.
    delay_lines: dict[str, float] = field(default_factory=dict)
    #: Per namespace, `iptables-restore` input sending packets to its delay line.
    iptables: dict[str, str] = field(default_factory=dict)

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
    """Impair `host`'s uplink: rate at both ends; delay (both ways) and loss in the host."""
    device = uplink(host)
    for where, dev in ((namespace, device), (switch, host.name)):
        lines = shaping.qdisc_lines(dev, host.link)
        if lines:
            result.qdiscs.setdefault(where, []).extend(lines)
    if host.link.delay_ms:
        lan = (nftables.LAN, host.lan) if host.lan is not None else None
        result.delay_lines[namespace] = host.link.delay_ms
        result.iptables[namespace] = shaping.delay_rules(device, lan)
    if host.link.loss_percent:
        loss = nftables.loss_ruleset(device, host.link.loss_percent)
        result.rulesets[namespace] = result.rulesets.get(namespace, "") + loss


def build(topology: Topology, prefix: str) -> None:
    """Carry out the plan; on any failure (or Ctrl-C) remove what was built, then raise."""
    steps = plan(topology, prefix)
    if steps.iptables and shutil.which(_IPTABLES_RESTORE) is None:
        raise tools.LabError(
            "--delay needs iptables (Debian package iptables), which is not installed"
        )
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
            tools.run(
                ["tc", "-n", namespace, "-batch", "-"],
                stdin="".join(f"{line}\n" for line in lines),
                what=f"shaping links in {namespace}",
            )
        # The delay lines bind their queues first: until then the rules would drop.
        start_delay_lines(steps.delay_lines)
        for namespace, rules in steps.iptables.items():
            tools.run(
                ["ip", "netns", "exec", namespace, _IPTABLES_RESTORE],
                stdin=rules,
                what=f"queueing delayed packets in {namespace} (iptables)",
            )
    except BaseException:
        teardown(prefix)
        raise


def delay_line_log(namespace: str, directory: Path = state.STATE_DIR) -> Path:
    """Where the delay line in `namespace` writes why it stopped, if it ever does."""
    return directory / f"delay-{namespace}.log"


def start_delay_lines(delays: dict[str, float]) -> None:
    """Start one delay line per namespace and return once each has bound its queue
    (the process started says so and exits; its child, in a session of its own, does
    the work); LabError naming the namespace and the line's own error if one fails."""
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for namespace, delay_ms in delays.items():
            log = delay_line_log(namespace)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("wb") as errors:
                process = subprocess.Popen(
                    ["ip", "netns", "exec", namespace, *shaping.delay_line_argv(delay_ms)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                )
            started.append((namespace, process, log))
        deadline = time.monotonic() + DELAY_LINE_START_S
        for namespace, process, log in started:
            _await_ready(namespace, process, log, deadline)
    finally:
        for _, process, _ in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def _await_ready(
    namespace: str, process: "subprocess.Popen[bytes]", log: Path, deadline: float
) -> None:
    try:
        said, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise tools.LabError(
            f"the delay line in {namespace} did not start: no answer within "
            f"{DELAY_LINE_START_S:g} s"
        ) from None
    if process.returncode == 0 and said.startswith(delayline.READY_LINE.encode()):
        return
    errors = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    reason = errors[-1] if errors else f"exit code {process.returncode}"
    raise tools.LabError(f"the delay line in {namespace} did not start: {reason}")


@dataclass(frozen=True, slots=True)
class QueueCounters:
    """What the kernel counted on a delay line's queue since it was bound."""

    #: Packets queued so far (the queue's last packet id).
    queued: int
    #: Dropped because the queue was full (`--maxlen` packets waiting).
    dropped_full: int
    #: Dropped because the delay line's socket buffer was full.
    dropped_socket: int


def delay_queue(namespace: str) -> QueueCounters | None:
    """The counters of the delay line's queue in `namespace`; None if none is bound."""
    table = tools.run(
        ["ip", "netns", "exec", namespace, "cat", "/proc/net/netfilter/nfnetlink_queue"],
        what=f"reading the netfilter queues of {namespace}",
    )
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == str(shaping.DELAY_QUEUE):
            return QueueCounters(int(fields[7]), int(fields[5]), int(fields[6]))
    return None


def delay_line_pids(namespace: str) -> list[int]:
    """The delay-line processes running in `namespace`."""
    found = []
    for pid in netns.pids(namespace):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if delayline.__name__.encode() in argv:
                found.append(pid)
    return found


def teardown(prefix: str) -> list[str]:
    """Remove every namespace named `prefix...` after ending the processes in them;
    idempotent, and it also clears what a killed earlier run left. Returns the names."""
    names = netns.list_namespaces(prefix)
    netns.end_processes(names)
    netns.delete(names)
    for log in state.STATE_DIR.glob(f"delay-{state.check_prefix(prefix)}*.log"):
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
    return names
