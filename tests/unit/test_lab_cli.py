"""`peerline lab` without a lab: usage mistakes are one line, and without root it says so."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peerline.lab.tools import has_net_admin


def peerline(*argv: str, unprivileged: bool = False) -> "subprocess.CompletedProcess[str]":
    command = [sys.executable, "-m", "peerline", *argv]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv (util-linux) to drop root")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def one_error_line(done: "subprocess.CompletedProcess[str]", code: int) -> str:
    assert done.returncode == code, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("peerline")
    assert ": error: " in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "pair", "--nat-a", "cone"], "unknown NAT profile 'cone'"),
        (["up", "pair", "--nat-b", "symmetric,hairpinning"], "unknown NAT modifier"),
        (["up", "same-nat", "--nat-b", "symmetric"], "has no nat-b"),
        (["up", "pair", "--cgn", "full-cone"], "has no cgn"),
        (["up", "triangle"], "unknown topology 'triangle'"),
        (["up", "/nonexistent/lab.toml"], "cannot read topology file"),
        (["up", "x.toml", "--nat-a", "full-cone"], "a topology file sets its NATs"),
        (["up", "pair", "--loss", "lots"], "expected a number of percent"),
        (["up", "pair", "--loss", "120"], "loss must be 0-100"),
        (["up", "pair", "--prefix", "PL"], "bad lab prefix"),
        (["exec", "peer-a"], "what should run?"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2(argv: list[str], message: str) -> None:
    assert message in one_error_line(peerline("lab", *argv), 2)


def test_profiles_lists_the_five_names() -> None:
    done = peerline("lab", "profiles")
    assert done.returncode == 0
    for name in ("none", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric"):
        assert f"  {name} " in done.stdout


def test_status_without_a_lab() -> None:
    done = peerline("lab", "status", "--prefix", "plu-")
    assert done.returncode == 1
    assert "no lab is up (prefix plu-)" in done.stdout


@pytest.mark.parametrize("argv", [["up", "pair"], ["down"]])
def test_without_root_one_line_says_root_is_needed(argv: list[str]) -> None:
    done = peerline("lab", *argv, "--prefix", "plu-", unprivileged=True)
    assert "needs root (CAP_NET_ADMIN)" in one_error_line(done, 1)


def test_capability_is_read_from_the_process_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000001000\n")
    assert has_net_admin(status)
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    assert not has_net_admin(status)
    assert not has_net_admin(tmp_path / "missing")


def test_demo_without_root_explains_and_suggests() -> None:
    done = peerline("demo", unprivileged=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs root (CAP_NET_ADMIN)" in done.stdout
    assert "sudo peerline demo" in done.stdout
    assert "peerline --help" in done.stdout
    assert "203.0.113.10" in done.stdout  # what it would have built
