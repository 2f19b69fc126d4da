"""The lab as a Python object: build it, run programs in its hosts, tear it down.

    with Lab.up(pair(parse_nat("full-cone"), parse_nat("symmetric")), prefix="plt-") as lab:
        server = lab.popen("server", [sys.executable, "-m", "some.server"])
        done = lab.run("peer-a", ["ip", "-4", "addr"])

`Lab.up` returns a built lab; used in a `with` block it is always torn down on the
way out. `peerline lab up` keeps it (the state file lets `Lab.attach` find it again).
"""

import shutil
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from peerline.lab import builder, netns, state, tools
from peerline.lab.probing import Probe
from peerline.lab.profiles import NatSpec
from peerline.lab.tools import LabError
from peerline.lab.topology import Host, Topology

#: The prefix of `peerline lab`; tests and the demo use their own so they never meet.
DEFAULT_PREFIX = "pl-"
#: How long `Lab.run` lets a command take unless told otherwise.
RUN_TIMEOUT_S = 30.0


def check_can_build(topology: Topology | None = None) -> None:
    """Raise the one-line LabError that explains why this process cannot build a lab."""
    tools.require_net_admin()
    shaped = topology is not None and any(host.link.is_shaped for host in topology.hosts)
    tools.require_tools(("ip", "nft", "sysctl", "tc") if shaped else ("ip", "nft", "sysctl"))


def teardown(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove the lab with `prefix` and whatever a killed run left; the namespaces removed.
    Idempotent: with nothing there it does nothing."""
    state.check_prefix(prefix)
    tools.require_net_admin()
    with state.locked(prefix):
        removed = builder.teardown(prefix)
        state.remove(prefix)
    return removed


class Lab:
    """A running lab: its topology, and its hosts by name."""

    def __init__(self, topology: Topology, prefix: str) -> None:
        self.topology = topology
        self.prefix = prefix

    @classmethod
    def up(cls, topology: Topology, *, prefix: str = DEFAULT_PREFIX) -> "Lab":
        """Build `topology`. Refuses when a lab with `prefix` is up; clears leftovers of a
        killed run first. On any failure nothing stays behind."""
        state.check_prefix(prefix)
        check_can_build(topology)
        with state.locked(prefix):
            try:
                running = state.load(prefix)
            except LabError:  # unreadable: whatever wrote it is gone; rebuilt below
                running = None
            leftovers = netns.list_namespaces(prefix)
            if running is not None and leftovers:
                hosts = ", ".join(host.name for host in running.topology.hosts)
                raise LabError(
                    f"a lab is already up (topology {running.topology.name}: {hosts}); "
                    "`peerline lab down` removes it"
                )
            builder.teardown(prefix)
            state.remove(prefix)
            builder.build(topology, prefix)
            try:
                state.save(state.LabState(prefix, topology, time.time()))
            except BaseException:
                builder.teardown(prefix)
                raise
        return cls(topology, prefix)

    @classmethod
    def attach(cls, prefix: str = DEFAULT_PREFIX) -> "Lab":
        """The lab that `peerline lab up` (or another process) built with `prefix`."""
        saved = state.load(prefix)
        if saved is None:
            raise LabError(f"no lab is up (prefix {prefix}); start one with `peerline lab up pair`")
        return cls(saved.topology, prefix)

    def down(self) -> list[str]:
        """Tear the lab down (idempotent); the namespaces removed."""
        return teardown(self.prefix)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.down()

    # Hosts and their addresses.

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(host.name for host in self.topology.hosts)

    def host(self, name: str) -> Host:
        """The host's description (UsageError naming the hosts if there is none)."""
        return self.topology.host(name)

    def namespace(self, host: str) -> str:
        """The network namespace of `host`, for `ip netns exec` or `nsenter`."""
        return builder.host_namespace(self.prefix, self.host(host).name)

    def address(self, host: str) -> str:
        """The primary address of `host` (server: 203.0.113.1, peer-a in pair: 10.1.0.2)."""
        return str(self.host(host).address)

    def addresses(self, host: str) -> tuple[str, ...]:
        """Every address of `host`'s uplink (server: 203.0.113.1 and 203.0.113.2)."""
        return tuple(str(address) for address in self.host(host).addresses)

    def public_address(self, host: str) -> str:
        """The source address the Internet sees from `host` (its outermost NAT's)."""
        return str(self.topology.public_address(self.host(host)))

    def nat(self, host: str) -> NatSpec | None:
        """The NAT `host`'s packets cross first (None: on the Internet itself)."""
        chain = self.topology.nats_in_front(self.host(host))
        return chain[0].nat if chain else None

    def nats_in_front(self, host: str) -> tuple[Host, ...]:
        """Every NAT on `host`'s way out, nearest first (two for peer-a in cgnat)."""
        return self.topology.nats_in_front(self.host(host))

    # Programs in the hosts.

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside `host` (`ip netns exec NS ...`)."""
        ip = shutil.which("ip") or "ip"
        return [ip, "netns", "exec", self.namespace(host), *argv]

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float = RUN_TIMEOUT_S,
        input: str | None = None,  # noqa: A002 - the name subprocess.run uses
        check: bool = False,
    ) -> "subprocess.CompletedProcess[str]":
        """Run `argv` in `host` to completion, output captured as text. Raises
        subprocess.TimeoutExpired (the command killed) after `timeout` seconds."""
        return subprocess.run(
            self.command(host, argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> "subprocess.Popen[Any]":
        """Start `argv` in `host`; `kwargs` go to subprocess.Popen. The lab's teardown
        ends it if the caller has not."""
        return subprocess.Popen(self.command(host, argv), **kwargs)

    def probe(self, host: str) -> Probe:
        """A UDP probe agent running in `host` (see `peerline.lab.probing`)."""
        return Probe.start(self.command(host, Probe.agent_argv()), host)
