"""ICE across real kernel NATs: two `tests.support.ice_peer` processes, each in its
own lab namespace behind its own NAT, with `peerline serve` (STUN and TURN) on
`server`. Port-restricted cones meet directly (a hole punched by the checks);
two symmetric NATs can only meet through the relay.

Lab prefix `plice-`, so this lab never meets another test's.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerline.lab.lab import Lab
from tests.lab.conftest import side_by_side
from tests.support.ice_peer import lab_with_serve, peer_server_args, run_pair

pytestmark = pytest.mark.lab

PREFIX = "plice-"
PROFILES = ["port-restricted-cone", "port-restricted-cone", "symmetric", "symmetric"]
SERVERS = peer_server_args()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Four NATs side by side and a supernode on `server`, all torn down after."""
    state = tmp_path_factory.mktemp("serve")
    with lab_with_serve(side_by_side("ice", PROFILES), PREFIX, state, alt_ip=False) as lab:
        yield lab


def assert_exchanged(results: list[dict[str, Any]]) -> None:
    for result in results:
        assert result["connected"], result
        assert result["received"] == 10, result
        assert result["peer_done"], result
    a, b = results
    assert a["local_address"] == b["remote_address"] or a["relayed"] or b["relayed"], results


def test_port_restricted_cones_connect_directly(lab: Lab, tmp_path: Path) -> None:
    results = run_pair(lab, tmp_path, "peer-1", "peer-2", SERVERS)
    assert_exchanged(results)
    for result in results:
        assert not result["relayed"], results
        assert result["local_type"] in ("srflx", "prflx"), results
        assert result["remote_type"] in ("srflx", "prflx"), results
        assert result["remote_address"].startswith("203.0.113."), results


def test_symmetric_nats_connect_through_the_relay(lab: Lab, tmp_path: Path) -> None:
    results = run_pair(lab, tmp_path, "peer-3", "peer-4", SERVERS)
    assert_exchanged(results)
    for result in results:
        assert result["relayed"], results
    assert "relay" in (results[0]["local_type"], results[0]["remote_type"]), results
