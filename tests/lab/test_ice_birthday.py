"""The birthday technique across real kernel NATs: a symmetric NAT (`masquerade
random,fully-random`) facing a port-restricted cone, each peer a
`tests.support.ice_peer` process in its own lab namespace, `peerline serve` on
`server` with both its addresses (RFC 5780 OTHER-ADDRESS, so each peer learns how
its NAT maps) and its TURN relay.

sym x prc, whoever controls: the technique runs (opener behind the symmetric NAT,
prober behind the cone) and the peers connect, directly when it wins, through the
relay otherwise, and the data arrives either way; the outcome and the times are
printed. With the defaults it wins (odds 0.9996); bounded to 2 ports and 20 probes
(odds 0.0006) it loses, and the relay carries the data after the budget.
When the controlling side (the offerer) takes the answer only after the other
side's run has given up (a person carried it back), that side runs once more when
the first check arrives, and the technique still wins.
sym x sym: not attempted (both map per destination), the relay at once.
prc x prc: not attempted, direct as always.

Lab prefix `plbd-`, so this lab never meets another test's.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerline.lab.lab import Lab
from tests.lab.conftest import side_by_side
from tests.support.ice_peer import lab_with_serve, peer_server_args, run_pair

pytestmark = pytest.mark.lab

PREFIX = "plbd-"
PROFILES = ["symmetric", "port-restricted-cone", "symmetric", "port-restricted-cone"]
SYM, PRC, SYM2, PRC2 = "peer-1", "peer-2", "peer-3", "peer-4"
SERVERS = peer_server_args()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two symmetric NATs, two port-restricted cones, and a supernode answering
    RFC 5780 on two addresses, all torn down after."""
    state = tmp_path_factory.mktemp("serve")
    with lab_with_serve(side_by_side("bday", PROFILES), PREFIX, state, alt_ip=True) as lab:
        yield lab


def exchanged(results: list[dict[str, Any]]) -> None:
    """Both connected, on one path, and each has all the other's datagrams."""
    for result in results:
        assert result["connected"], results
        assert result["received"] == 10, results
        assert result["peer_done"], results
    a, b = results
    assert a["relayed"] == b["relayed"], results
    if not a["relayed"]:
        assert a["local_address"] == b["remote_address"], results
        assert b["local_address"] == a["remote_address"], results


def report(name: str, results: list[dict[str, Any]]) -> None:
    """The outcome and the times, for whoever reads the test's output."""
    lines = [
        {
            key: result.get(key)
            for key in ("relayed", "local_type", "remote_type", "setup_s", "connect_s", "birthday")
        }
        for result in results
    ]
    print(f"\n{name}: " + json.dumps(lines))


def symmetric_and_cone(
    lab: Lab, tmp: Path, *, symmetric_controls: bool, ports: int = 256, probes: int = 2000
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run sym x prc with the technique bounded to `ports` and `probes`; check
    what holds whatever the outcome and return (sym's result, prc's)."""
    controlling, controlled = (SYM, PRC) if symmetric_controls else (PRC, SYM)
    bounds = ["--birthday-ports", str(ports), "--birthday-probes", str(probes)]
    results = run_pair(lab, tmp, controlling, controlled, SERVERS, extra=bounds)
    report(f"{controlling} x {controlled}, {ports} ports, {probes} probes", results)
    exchanged(results)
    by_host = dict(zip((controlling, controlled), results, strict=True))
    sym, prc = by_host[SYM], by_host[PRC]
    assert (sym["mapping"], prc["mapping"]) == ("dependent", "independent"), results
    assert sym["birthday"] is not None, results
    assert prc["birthday"] is not None, results
    assert sym["birthday"]["role"] == "opener", results
    assert prc["birthday"]["role"] == "prober", results
    assert sym["birthday"]["ports"] == ports, results
    assert 0 < prc["birthday"]["probes_sent"] <= probes, results
    if sym["relayed"]:
        # the technique lost: both gave up after the budget, and only then the relay
        for side in (sym, prc):
            assert side["birthday"]["outcome"] == "gave-up", results
            assert side["birthday"]["hit_after"] is None, results
        assert prc["birthday"]["probes_sent"] == probes, results
        assert "relay" in (sym["local_type"], sym["remote_type"]), results
    else:
        # it won: the symmetric side sends from one of its extra ports, and each side
        # knows the other's address only from a check (peer-reflexive)
        for side in (sym, prc):
            assert side["birthday"]["outcome"] == "won", results
        assert sym["local_type"] == "prflx", results
        assert prc["remote_type"] == "prflx", results
        assert prc["local_type"] in ("srflx", "prflx"), results
        assert prc["remote_address"].startswith(lab.public_address(SYM) + ":"), results
    return sym, prc


@pytest.mark.parametrize("symmetric_controls", [True, False], ids=["sym-controls", "prc-controls"])
def test_symmetric_and_port_restricted_cone_connect(
    lab: Lab, tmp_path: Path, symmetric_controls: bool
) -> None:
    symmetric_and_cone(lab, tmp_path, symmetric_controls=symmetric_controls)


@pytest.mark.parametrize("symmetric_controls", [True, False], ids=["sym-controls", "prc-controls"])
def test_when_the_technique_loses_the_relay_carries_the_data(
    lab: Lab, tmp_path: Path, symmetric_controls: bool
) -> None:
    sym, _ = symmetric_and_cone(
        lab, tmp_path, symmetric_controls=symmetric_controls, ports=2, probes=20
    )
    assert sym["relayed"] or sym["birthday"]["outcome"] == "won"  # won: odds 0.0006


@pytest.mark.parametrize("symmetric_controls", [True, False], ids=["sym-late", "prc-late"])
def test_an_answer_carried_back_late_still_meets(
    lab: Lab, tmp_path: Path, symmetric_controls: bool
) -> None:
    controlling, controlled = (SYM, PRC) if symmetric_controls else (PRC, SYM)
    late = ["--late", "7"]  # more than the 5 s budget of the side that has both at once
    results = run_pair(lab, tmp_path, controlling, controlled, SERVERS, extra_a=late)
    report(f"{controlling} (late) x {controlled}", results)
    exchanged(results)
    early, punctual = results[1]["birthday"], results[0]["birthday"]
    assert early is not None, results
    assert punctual is not None, results
    assert early["attempt"] == 2, results  # gave up once, ran again when checked
    assert punctual["attempt"] == 1, results
    if not results[0]["relayed"]:
        assert early["outcome"] == punctual["outcome"] == "won", results


@pytest.mark.parametrize(
    ("hosts", "mapping", "relayed"),
    [((SYM, SYM2), "dependent", True), ((PRC, PRC2), "independent", False)],
    ids=["sym-x-sym-relayed", "prc-x-prc-direct"],
)
def test_other_pairs_do_not_try(
    lab: Lab, tmp_path: Path, hosts: tuple[str, str], mapping: str, relayed: bool
) -> None:
    """Two symmetric NATs go through the relay, two cones stay direct, and the
    technique is not attempted (so nothing holds the relay back)."""
    results = run_pair(lab, tmp_path, *hosts, SERVERS)
    report(" x ".join(hosts), results)
    exchanged(results)
    for result in results:
        assert result["mapping"] == mapping, results
        assert result["birthday"] is None, results
        assert result["relayed"] is relayed, results
        if not relayed:
            assert result["local_type"] in ("srflx", "prflx"), results
