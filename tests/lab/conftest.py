"""The NAT lab tests: real namespaces and kernel NATs, so root, `ip` and `nft` are needed.

Every lab here uses the prefix `plt-`, never the `pl-` of a lab a user may have up.
Each lab is first cleared of whatever a killed earlier run left, and always torn down.
"""

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network

import pytest

from peerline.lab.lab import Lab, teardown
from peerline.lab.profiles import parse_nat
from peerline.lab.tools import has_net_admin
from peerline.lab.topology import INTERNET, Host, Topology

PREFIX = "plt-"
SKIP_REASON = "needs root and network namespaces (NAT lab)"


def lab_available() -> bool:
    return has_net_admin() and all(shutil.which(tool) for tool in ("ip", "nft", "sysctl"))


@pytest.fixture(scope="session", autouse=True)
def _needs_lab() -> None:
    """Session-scoped, so it skips before any module-scoped lab is built."""
    if not lab_available():
        pytest.skip(SKIP_REASON)


@contextlib.contextmanager
def built(topology: Topology, prefix: str = PREFIX) -> Iterator[Lab]:
    """`topology` built fresh under a test prefix (each file may have its own),
    cleared of what a killed run left, and torn down whatever happens."""
    teardown(prefix)
    with Lab.up(topology, prefix=prefix) as lab:
        yield lab


def side_by_side(name: str, profiles: Sequence[str]) -> Topology:
    """The server and, for the Nth profile, nat-N (203.0.113.N0, LAN 10.N.0.0/24) with
    peer-N (10.N.0.2) behind it: many NATs proved in one lab."""
    hosts = [Host("server", INTERNET, (IPv4Address("203.0.113.1"), IPv4Address("203.0.113.2")))]
    for index, profile in enumerate(profiles, start=1):
        hosts += [
            Host(
                f"nat-{index}",
                INTERNET,
                (IPv4Address(f"203.0.113.{10 * index}"),),
                nat=parse_nat(profile),
                lan=IPv4Network(f"10.{index}.0.0/24"),
            ),
            Host(f"peer-{index}", f"nat-{index}", (IPv4Address(f"10.{index}.0.2"),)),
        ]
    return Topology(name, tuple(hosts))
