"""STUN interop with coturn, both ways, across real lab NATs.

coturn's `turnutils_natdiscovery` must reach the same verdict against `peerline
serve` as against coturn's own `turnserver`; `peerline natcheck` must report the
same against coturn as against `peerline serve`; `turnutils_stunclient` must get
the NAT's public address from `peerline serve`.
"""

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from peerline.lab.lab import Lab, teardown
from peerline.lab.programs import PEERLINE, start_serve
from tests.lab.conftest import side_by_side
from tests.support.procs import require_program

pytestmark = [pytest.mark.lab, pytest.mark.interop, pytest.mark.timeout(240)]

PREFIX = "pli-"
PROFILES = ["full-cone", "restricted-cone", "port-restricted-cone", "symmetric"]
COTURN_PORT, PEERLINE_PORT = 3478, 4478
VERDICT = re.compile(r"^NAT with (.+)!$", re.MULTILINE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_program("turnserver", "coturn")
    teardown(PREFIX)
    with Lab.up(side_by_side("stuninterop", PROFILES), prefix=PREFIX) as lab:
        state = tmp_path_factory.mktemp("serve")
        coturn = lab.popen(
            "server",
            [
                "turnserver",
                "-n",
                "--listening-ip=203.0.113.1",
                "--listening-ip=203.0.113.2",
                f"--listening-port={COTURN_PORT}",
                f"--alt-listening-port={COTURN_PORT + 1}",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file=stdout",
                f"--pidfile={state / 'turnserver.pid'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ours = start_serve(
            lab,
            "server",
            [
                "--listen",
                "203.0.113.1",
                "--alt-ip",
                "203.0.113.2",
                "--stun-port",
                str(PEERLINE_PORT),
                "--tls-port",
                "0",
                "--state-dir",
                str(state),
            ],
        )
        try:
            wait_for_servers(lab)
            yield lab
        finally:
            ours.stop()
            coturn.terminate()
            coturn.wait(timeout=10)


def wait_for_servers(lab: Lab) -> None:
    for port in (COTURN_PORT, PEERLINE_PORT):
        for _ in range(40):
            done = lab.run(
                "peer-1",
                [
                    *PEERLINE,
                    "natcheck",
                    "--server",
                    f"203.0.113.1:{port}",
                    "--timeout",
                    "0.5",
                    "--json",
                ],
                timeout=30,
            )
            if done.returncode == 0:
                break
        else:
            pytest.fail(f"no STUN server answered on port {port}")


def natdiscovery_verdicts(lab: Lab, host: str, ports: tuple[int, ...]) -> list[list[str]]:
    """Run natdiscovery against each port at once (each waits out its own timeouts)."""
    runs = [
        lab.popen(
            host,
            ["turnutils_natdiscovery", "-m", "-f", "-p", str(port), "203.0.113.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for port in ports
    ]
    return [VERDICT.findall(run.communicate(timeout=90)[0]) for run in runs]


def natcheck(lab: Lab, host: str, port: int) -> dict[str, object]:
    done = lab.run(
        host, [*PEERLINE, "natcheck", "--server", f"203.0.113.1:{port}", "--json"], timeout=60
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("profile", PROFILES)
def test_natdiscovery_same_verdict_from_both_servers(lab: Lab, profile: str) -> None:
    host = f"peer-{PROFILES.index(profile) + 1}"
    against_coturn, against_peerline = natdiscovery_verdicts(
        lab, host, (COTURN_PORT, PEERLINE_PORT)
    )
    assert len(against_coturn) == 2, against_coturn  # one mapping and one filtering verdict
    assert against_peerline == against_coturn


@pytest.mark.parametrize("profile", PROFILES)
def test_natcheck_same_report_from_both_servers(lab: Lab, profile: str) -> None:
    host = f"peer-{PROFILES.index(profile) + 1}"
    keys = ("nat", "mapping", "filtering", "hairpinning", "classic_type", "group")
    from_coturn = natcheck(lab, host, COTURN_PORT)
    from_peerline = natcheck(lab, host, PEERLINE_PORT)
    assert {key: from_coturn[key] for key in keys} == {key: from_peerline[key] for key in keys}
    assert from_peerline["mapping"] is not None


def test_stunclient_gets_the_public_address(lab: Lab) -> None:
    # Behind a NAT, turnutils_stunclient prints the reflexive address of its first
    # answer and then waits on (against coturn's own server as well): read, then stop it.
    try:
        done = lab.run(
            "peer-1", ["turnutils_stunclient", "-p", str(PEERLINE_PORT), "203.0.113.1"], timeout=5
        )
        output = done.stdout
    except subprocess.TimeoutExpired as timeout:
        output = (
            (timeout.stdout or b"").decode()
            if isinstance(timeout.stdout, bytes)
            else str(timeout.stdout or "")
        )
    addresses = re.findall(r"UDP reflexive addr: (\S+):(\d+)", output)
    assert addresses, output
    assert {ip for ip, _port in addresses} == {lab.public_address("peer-1")}
