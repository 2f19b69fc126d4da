"""`peerline natcheck` from behind every lab NAT reports exactly what the NAT is.

The server runs `peerline serve` with two addresses (RFC 5780); each peer runs
`peerline natcheck --json` against it. Expected values are written out here from
the profile definitions (RFC 4787 terms), not computed by the code under test.
"""

import contextlib
import json
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from peerline.lab import builtin
from peerline.lab.lab import Lab, teardown
from peerline.lab.profiles import parse_nat
from peerline.lab.programs import PEERLINE, LabProgram, start_serve
from peerline.lab.topology import INTERNET, Host, Topology
from tests.lab.conftest import side_by_side

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

#: Our own prefix: other lab tests may run at the same time on a developer's machine.
PREFIX = "pln-"
EIM, ADF, APDF = "endpoint-independent", "address-dependent", "address-and-port-dependent"
APDM = APDF

#: profile text -> (mapping, filtering, classic type, hairpinning, group)
EXPECTED: dict[str, tuple[str, str, str, bool, str]] = {
    "full-cone": (EIM, EIM, "full cone", False, "B"),
    "restricted-cone": (EIM, ADF, "restricted cone", False, "B"),
    "port-restricted-cone": (EIM, APDF, "port-restricted cone", False, "B"),
    "symmetric": (APDM, APDF, "symmetric", False, "F"),
    "full-cone,hairpin": (EIM, EIM, "full cone", True, "A"),
    "port-restricted-cone,hairpin": (EIM, APDF, "port-restricted cone", True, "A"),
    "port-restricted-cone,udp-timeout=5": (EIM, APDF, "port-restricted cone", False, "B"),
}
PROFILES = list(EXPECTED)


@contextlib.contextmanager
def built(topology: Topology) -> Iterator[Lab]:
    teardown(PREFIX)
    with Lab.up(topology, prefix=PREFIX) as lab:
        yield lab


def start_server(lab: Lab, tmp: Path) -> LabProgram:
    """`peerline serve` on the lab's server with both addresses, ready to answer."""
    server = start_serve(
        lab,
        "server",
        [
            "--listen",
            "203.0.113.1",
            "--alt-ip",
            "203.0.113.2",
            "--tls-port",
            "0",
            "--state-dir",
            str(tmp),
        ],
    )
    assert server.running, server.startup
    return server


def natcheck(lab: Lab, host: str, *extra: str, server: str = "203.0.113.1") -> dict[str, Any]:
    done = lab.run(host, [*PEERLINE, "natcheck", "--server", server, "--json", *extra], timeout=90)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    topology = side_by_side("natzoo", PROFILES)
    open_host = Host("open", INTERNET, (IPv4Address("203.0.113.99"),))
    with built(Topology("natzoo", (*topology.hosts, open_host))) as lab:
        server = start_server(lab, tmp_path_factory.mktemp("serve"))
        yield lab
        server.stop()


@pytest.mark.parametrize("profile", PROFILES)
def test_natcheck_reports_the_profile(zoo: Lab, profile: str) -> None:
    host = f"peer-{PROFILES.index(profile) + 1}"
    report = natcheck(zoo, host)
    mapping, filtering, classic, hairpin, group = EXPECTED[profile]
    assert report["udp"] is True
    assert report["nat"] is True
    assert report["public_address"].startswith(zoo.public_address(host) + ":")
    assert report["mapping"] == mapping
    assert report["filtering"] == filtering
    assert report["classic_type"] == classic
    assert report["hairpinning"] is hairpin
    assert report["group"] == group
    # Linux NATs keep the inside port when it is free; the symmetric profile randomises.
    assert report["port_preservation"] is (profile != "symmetric")
    assert report["alg"] is False


def test_natcheck_without_nat(zoo: Lab) -> None:
    report = natcheck(zoo, "open")
    assert report["nat"] is False
    assert report["public_address"].startswith("203.0.113.99:")
    assert report["classic_type"] == "open"


def test_binding_lifetime_is_measured(zoo: Lab) -> None:
    host = f"peer-{PROFILES.index('port-restricted-cone,udp-timeout=5') + 1}"
    report = natcheck(zoo, host, "--lifetime", "--lifetime-max", "16")
    assert 3.5 <= report["binding_lifetime_s"] <= 6.5, report


def test_one_address_server_reports_what_it_can(zoo: Lab, tmp_path: Path) -> None:
    single = start_serve(
        zoo,
        "server",
        [
            "--listen",
            "203.0.113.2",
            "--stun-port",
            "3500",
            "--tls-port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
    )
    try:
        host = f"peer-{PROFILES.index('symmetric') + 1}"
        report: dict[str, Any] = {}
        for _ in range(20):  # until the server is up
            done = zoo.run(
                host,
                [*PEERLINE, "natcheck", "--server", "203.0.113.2:3500", "--json", "--timeout", "1"],
                timeout=30,
            )
            if done.returncode == 0:
                report = json.loads(done.stdout)
                break
        assert report["udp"] is True
        assert report["mapping"] is None
        assert report["filtering"] is None
        assert any("OTHER-ADDRESS" in reason for reason in report["skipped"])
    finally:
        single.stop()


def test_no_server_is_one_line_and_nonzero(zoo: Lab) -> None:
    done = zoo.run(
        "peer-1",
        [*PEERLINE, "natcheck", "--server", "203.0.113.2:3999", "--timeout", "1"],
        timeout=30,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("peerline: error")]
    assert len(errors) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("nat", "hairpin", "group"),
    [("port-restricted-cone", False, "B"), ("port-restricted-cone,hairpin", True, "A")],
)
def test_same_nat_hairpinning(tmp_path: Path, nat: str, hairpin: bool, group: str) -> None:
    with built(builtin.same_nat(parse_nat(nat))) as lab:
        server = start_server(lab, tmp_path)
        try:
            for host in ("peer-a", "peer-b"):
                report = natcheck(lab, host)
                assert report["hairpinning"] is hairpin
                assert report["group"] == group
                assert report["public_address"].startswith("203.0.113.10:")
        finally:
            server.stop()


def test_cgnat_double_nat(tmp_path: Path) -> None:
    with built(builtin.cgnat()) as lab:
        server = start_server(lab, tmp_path)
        try:
            report = natcheck(lab, "peer-a")
        finally:
            server.stop()
    assert report["nat"] is True
    assert report["public_address"].startswith("203.0.113.30:")  # the carrier NAT's address
    assert report["mapping"] == EIM
    assert report["filtering"] == APDF
    assert report["classic_type"] == "port-restricted cone"
