"""`peerline lab` end to end, as a user types it (with the test prefix)."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerline.lab.lab import Lab, teardown
from peerline.lab.netns import list_namespaces
from tests.lab.conftest import PREFIX

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def peerline(*argv: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "peerline", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lab(*argv: str) -> "subprocess.CompletedProcess[str]":
    command, *rest = argv
    return peerline("lab", command, "--prefix", PREFIX, *rest)


def root_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def root_tables() -> str:
    return subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def clean() -> Iterator[None]:
    teardown(PREFIX)
    yield
    teardown(PREFIX)


def one_error_line(done: "subprocess.CompletedProcess[str]", code: int) -> str:
    assert done.returncode == code, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("peerline")
    assert ": error: " in lines[0]
    return lines[0]


@pytest.mark.usefixtures("clean")
def test_up_exec_status_down() -> None:
    links, tables = root_links(), root_tables()
    done = lab("up", "pair", "--nat-a", "full-cone", "--nat-b", "symmetric")
    assert done.returncode == 0, done.stderr
    assert "nat-a" in done.stdout
    assert "full-cone" in done.stdout
    assert "symmetric" in done.stdout
    assert root_links() == links, "the lab put a link in the root namespace"

    again = lab("up", "same-nat")
    assert "already up" in one_error_line(again, 1)

    shown = lab("exec", "peer-a", "--", "ip", "-4", "addr")
    assert shown.returncode == 0
    assert "10.1.0.2/24" in shown.stdout
    assert lab("exec", "peer-b", "--", "sh", "-c", "exit 7").returncode == 7
    assert "no host 'nobody'" in one_error_line(lab("exec", "nobody", "--", "true"), 2)

    status = lab("status", "--json")
    assert status.returncode == 0
    document = json.loads(status.stdout)
    hosts = {host["name"]: host for host in document["hosts"]}
    assert hosts["peer-a"]["public_address"] == "203.0.113.10"
    assert hosts["peer-a"]["namespace"] == f"{PREFIX}peer-a"
    assert hosts["nat-b"]["nat"] == "symmetric"
    assert "peer-b" in lab("status").stdout

    # a process left running inside the lab is ended by `down`
    sleeper = subprocess.Popen(Lab.attach(PREFIX).command("peer-a", ["sleep", "60"]))
    try:
        done = lab("down")
        assert done.returncode == 0, done.stderr
        assert sleeper.wait(timeout=10) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert list_namespaces(PREFIX) == []
    assert root_links() == links
    assert root_tables() == tables
    assert lab("down").returncode == 0  # idempotent
    status = lab("status")
    assert status.returncode == 1
    assert "no lab is up" in status.stdout


@pytest.mark.usefixtures("clean")
def test_down_removes_leftovers_of_a_killed_run() -> None:
    subprocess.run(["ip", "netns", "add", f"{PREFIX}junk"], check=True, timeout=10)
    sleeper = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}junk", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while not list_namespaces(f"{PREFIX}junk") and time.monotonic() < deadline:
            time.sleep(0.05)
        done = lab("down")
        assert done.returncode == 0, done.stderr
        assert f"{PREFIX}junk" in done.stdout
        assert sleeper.wait(timeout=10) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert list_namespaces(PREFIX) == []


@pytest.mark.usefixtures("clean")
def test_up_after_a_killed_up_or_test_run() -> None:
    """A lab left up (state file and namespaces) is cleared by the fixtures' teardown;
    bare leftovers without a state file are cleared by `up` itself."""
    assert lab("up", "pair").returncode == 0
    teardown(PREFIX)
    subprocess.run(["ip", "netns", "add", f"{PREFIX}server"], check=True, timeout=10)
    done = lab("up", "pair")
    assert done.returncode == 0, done.stderr


@pytest.mark.usefixtures("clean")
def test_topology_file(tmp_path: Path) -> None:
    path = tmp_path / "two-homes.toml"
    path.write_text(
        """
[nats.home-1]
address = "203.0.113.50"
lan = "192.168.1.0/24"
profile = "full-cone,hairpin"

[nats.home-2]
address = "203.0.113.60"
lan = "192.168.1.0/24"
profile = "symmetric,udp-timeout=30"

[hosts.server]
addresses = ["203.0.113.1", "203.0.113.2"]

[hosts.alice]
network = "home-1"
address = "192.168.1.2"

[hosts.bob]
network = "home-2"
address = "192.168.1.2"

[links.home-2]
loss = 0.5
"""
    )
    done = lab("up", str(path))
    assert done.returncode == 0, done.stderr
    assert "two-homes" in done.stdout
    assert "loss 0.5%" in done.stdout
    shown = lab("exec", "bob", "--", "ip", "route")
    assert "default via 192.168.1.1" in shown.stdout
    rules = lab("exec", "home-2", "--", "nft", "list", "ruleset").stdout
    assert "fully-random" in rules
    assert "numgen random mod 10000 < 50" in rules
