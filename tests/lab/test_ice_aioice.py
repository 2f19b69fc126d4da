"""ICE interop with aioice (PyPI `aioice`, the ICE agent aiortc uses) across real kernel NATs.

An aioice `Connection` on peer-a and a peerline `IceTransport` on peer-b, each
driven by `tests.support.aioice_peer` in its own namespace of the `pair` lab,
with `peerline serve` (STUN and TURN) on `server`. Candidates and credentials
cross as RFC 8839 text: aioice writes its candidates with `Candidate.to_sdp()`
and reads ours with `Candidate.from_sdp()`. Each side sends numbered datagrams
until the other has them all, with either side controlling (aioice nominates
aggressively, RFC 5245 style; peerline regularly, RFC 8445).

Two NAT pairs: port-restricted cone (aioice) x full cone (peerline), where both
meet on server-reflexive candidates; and full cone (aioice) x symmetric
(peerline), where the symmetric NAT gives peerline a new port toward aioice, so
aioice must learn it as peer-reflexive and peerline must see its own local
candidate as peer-reflexive. Then both relay-only, through peerline serve's
TURN, and a QUIC session over aioice's path.

Lab prefix `plaio-`, so this lab never meets another test's.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from peerline.lab.builtin import pair
from peerline.lab.lab import Lab
from peerline.lab.profiles import parse_nat

pytest.importorskip("aioice", reason="needs the PyPI package aioice (dev extra)")
from tests.support.aioice_peer import run_pair
from tests.support.ice_peer import PASSWORD, SERVER_IP, USER, lab_with_serve

pytestmark = pytest.mark.lab

PREFIX = "plaio-"
NAT_A_PUBLIC, NAT_B_PUBLIC = "203.0.113.10", "203.0.113.20"
COUNT = 12
ROLES = ("controlling", "controlled")


@dataclass(frozen=True)
class NatPair:
    """The two NATs and the candidate types each side must end up on."""

    nat_a: str
    nat_b: str
    peerline_local: str  # peerline's own side of the selected pair
    aioice_remote: str  # how aioice knows peerline's address

    def __str__(self) -> str:
        return f"{self.nat_a}-x-{self.nat_b}"


NAT_PAIRS = [
    NatPair("port-restricted-cone", "full-cone", peerline_local="srflx", aioice_remote="srflx"),
    NatPair("full-cone", "symmetric", peerline_local="prflx", aioice_remote="prflx"),
]


@dataclass(frozen=True)
class Case:
    lab: Lab
    nats: NatPair


@pytest.fixture(scope="module", params=NAT_PAIRS, ids=str)
def case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Case]:
    """The pair lab with these NATs and a supernode on `server`, all torn down after."""
    nats: NatPair = request.param
    topology = pair(parse_nat(nats.nat_a), parse_nat(nats.nat_b))
    state = tmp_path_factory.mktemp("serve")
    with lab_with_serve(topology, PREFIX, state, alt_ip=False) as lab:
        yield Case(lab, nats)


def driver_args(impl: str, role: str, *extra: str) -> list[str]:
    return ["--impl", impl, "--role", role, "--stun", f"{SERVER_IP}:3478", *extra]


def other(role: str) -> str:
    return ROLES[1 - ROLES.index(role)]


def assert_exchanged(aioice_side: dict[str, Any], peerline_side: dict[str, Any]) -> None:
    """Both connected on one pair, seen from its two ends, and every datagram arrived."""
    for report in (aioice_side, peerline_side):
        assert report["connected"], report
        assert report["received"] == COUNT, report
        assert report["strangers"] == 0, report
        assert report["peer_done"], report
    theirs, ours = aioice_side["path"], peerline_side["path"]
    assert theirs["remote_address"] == ours["local_address"], (theirs, ours)
    assert ours["remote_address"].startswith(NAT_A_PUBLIC + ":") or ours["relayed"], ours


@pytest.mark.parametrize("aioice_role", ROLES)
def test_aioice_and_peerline_connect_directly(case: Case, tmp_path: Path, aioice_role: str) -> None:
    aioice_side, peerline_side = run_pair(
        case.lab,
        tmp_path,
        driver_args("aioice", aioice_role, "--count", str(COUNT)),
        driver_args("peerline", other(aioice_role), "--count", str(COUNT)),
    )
    assert_exchanged(aioice_side, peerline_side)
    ours, theirs = peerline_side["path"], aioice_side["path"]
    assert not ours["relayed"], ours
    assert not theirs["relayed"], theirs
    assert ours["local_type"] == case.nats.peerline_local, ours
    assert ours["local_address"].startswith(NAT_B_PUBLIC + ":"), ours
    assert theirs["remote_type"] == case.nats.aioice_remote, theirs
    # aioice sends from its host socket; peerline knows it by the srflx it signalled
    assert theirs["local_type"] == "host", theirs
    assert ours["remote_type"] == "srflx", ours


@pytest.mark.parametrize("aioice_role", ROLES)
def test_relay_only_through_peerline_serve(case: Case, tmp_path: Path, aioice_role: str) -> None:
    turn = ["--turn", f"{SERVER_IP}:3478", "--user", USER, "--password", PASSWORD]
    extra = [*turn, "--relay-only", "--count", str(COUNT)]
    aioice_side, peerline_side = run_pair(
        case.lab,
        tmp_path,
        driver_args("aioice", aioice_role, *extra),
        driver_args("peerline", other(aioice_role), *extra),
    )
    assert_exchanged(aioice_side, peerline_side)
    for report in (aioice_side, peerline_side):
        path = report["path"]
        assert path["relayed"], report
        assert (path["local_type"], path["remote_type"]) == ("relay", "relay"), report
        assert path["remote_address"].startswith(SERVER_IP + ":"), report


def test_peer_session_over_aioice_path(case: Case, tmp_path: Path) -> None:
    """peerline's QUIC session over aioice's selected pair (the bench's adapter) and
    over peerline's: the handshake pins both fingerprints, a stream carries 1 MB."""
    quic = ["--mode", "quic", "--bulk-mb", "1"]
    client, server = run_pair(
        case.lab,
        tmp_path,
        driver_args("aioice", "controlling", *quic),
        driver_args("peerline", "controlled", *quic),
    )
    assert client["connected"], client
    assert server["connected"], server
    assert client["echoed"], client
    assert server["first_byte"], server
    assert client["bulk"]["verified"], client
    assert server["bulk"]["bytes"] == 1_000_000, server
    assert server["bye"], server


@pytest.mark.parametrize("case", NAT_PAIRS[:1], ids=str, indirect=True)
@pytest.mark.parametrize("claimed", ROLES)
def test_role_conflict_is_resolved(case: Case, tmp_path: Path, claimed: str) -> None:
    """Both sides claim the same role: the 487 exchange (RFC 8445 §7.3.1.1) leaves one
    of each, whichever of the two implementations switched, and data flows."""
    aioice_side, peerline_side = run_pair(
        case.lab,
        tmp_path,
        driver_args("aioice", claimed, "--count", str(COUNT)),
        driver_args("peerline", claimed, "--count", str(COUNT)),
    )
    assert_exchanged(aioice_side, peerline_side)
    roles = {aioice_side["final_role"], peerline_side["final_role"]}
    assert roles == set(ROLES), (aioice_side, peerline_side)


@pytest.mark.parametrize("case", NAT_PAIRS[:1], ids=str, indirect=True)
def test_consent_holds_past_its_timeout(case: Case, tmp_path: Path) -> None:
    """40 s with no data, longer than either side gives consent (peerline: 30 s after
    the last answer, RFC 7675; aioice: 6 unanswered checks 4-6 s apart), then a second
    round: each side answered the other's consent checks throughout."""
    hold = ["--count", str(COUNT), "--hold", "40", "--timeout", "60"]
    aioice_side, peerline_side = run_pair(
        case.lab,
        tmp_path,
        driver_args("aioice", "controlling", *hold),
        driver_args("peerline", "controlled", *hold),
        timeout=150,
    )
    assert_exchanged(aioice_side, peerline_side)
    for report in (aioice_side, peerline_side):
        second = report["after_hold"]
        assert second["received"] == COUNT, report
        assert second["peer_done"], report
        assert second["lost"] == [], report
