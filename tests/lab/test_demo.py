"""`peerline demo` as root: it narrates, proves both NATs, and always tears down."""

import os
import signal
import subprocess
import sys
import time

import pytest

from peerline.demo import PREFIX
from peerline.lab.netns import list_namespaces

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def test_demo_proves_both_nats_and_leaves_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peerline", "demo"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✗" not in done.stdout
    # 3 checks per NAT, natcheck agreeing with each profile, the data across, the end.
    assert done.stdout.count("✓") == 10
    assert "1,000,000 bytes arrived" in done.stdout
    scoreboard = [line for line in done.stdout.splitlines() if line.endswith(" ok")]
    assert len(scoreboard) == 4, done.stdout
    assert "natcheck agrees with the lab's symmetric profile" in done.stdout
    assert "mapping address-and-port-dependent" in done.stdout  # nat-b is symmetric
    assert "203.0.113.10" in done.stdout
    assert "Tear down" in done.stdout
    assert list_namespaces(PREFIX) == []


def test_ctrl_c_midway_still_tears_down() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "peerline", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    ) as demo:
        try:
            assert demo.stdout is not None
            deadline = time.monotonic() + 30
            for line in demo.stdout:  # wait until the lab is built and probing has begun
                if line.startswith("2. ") or time.monotonic() > deadline:
                    break
            assert list_namespaces(PREFIX), "the demo did not build its lab"
            os.killpg(demo.pid, signal.SIGINT)  # the demo and its probes, like Ctrl-C
            assert demo.wait(timeout=30) == 130
            assert demo.stderr is not None
            assert demo.stderr.read().strip() == "peerline: interrupted"
        finally:
            demo.kill()
    assert list_namespaces(PREFIX) == []
