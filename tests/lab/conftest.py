"""The NAT lab tests: real namespaces and kernel NATs, so root, `ip` and `nft` are needed.

Every lab here uses the prefix `plt-`, never the `pl-` of a lab a user may have up.
Each lab is first cleared of whatever a killed earlier run left, and always torn down.
"""

import contextlib
import shutil
from collections.abc import Iterator

import pytest

from peerline.lab.lab import Lab, teardown
from peerline.lab.tools import has_net_admin
from peerline.lab.topology import Topology

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
def built(topology: Topology) -> Iterator[Lab]:
    """`topology` built fresh under the test prefix, torn down whatever happens."""
    teardown(PREFIX)
    with Lab.up(topology, prefix=PREFIX) as lab:
        yield lab
