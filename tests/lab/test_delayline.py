"""`--delay` through the userspace delay line: bursts pass whole and in order, loss
and rate still act beside it, a dead delay line drops (never skips the delay), and
`lab down` ends it. Lab prefix `pldl-`."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from peerline.lab import builder, builtin, netns
from peerline.lab.lab import Lab
from peerline.lab.profiles import LinkShape, parse_nat
from tests.lab.conftest import built
from tests.support.procs import wait_until

pytestmark = [
    pytest.mark.lab,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("iptables-restore") is None,
        reason="--delay needs iptables (Debian package iptables)",
    ),
]

PREFIX = "pldl-"
SERVER = "203.0.113.1"
PORT = 7100

#: Counts numbered datagrams until `count` came or none came for `idle` seconds; prints
#: the numbers in arrival order and every source address. Run in the receiving host.
RECEIVER = """
import json, select, socket, sys
ip, port, count, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 1024 * 1024)  # SO_RCVBUFFORCE: a whole burst
sock.bind((ip, port))
print("ready", flush=True)
numbers, sources = [], set()
while len(numbers) < count and select.select([sock], [], [], idle)[0]:
    data, source = sock.recvfrom(65536)
    numbers.append(int(data[:8]))
    sources.add(source)
print(json.dumps({"numbers": numbers, "sources": sorted(sources)}), flush=True)
"""

#: Sends datagrams 0..count-1 of `size` bytes back to back from one socket.
SENDER = """
import socket, sys
ip, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for number in range(count):
    sock.sendto(b"%08d" % number + bytes(size - 8), (ip, port))
"""


def burst(lab: Lab, count: int, size: int, *, idle: float = 2.0) -> dict[str, Any]:
    """`count` datagrams from peer-a to the server; what the server received."""
    receiver = lab.popen(
        "server",
        [sys.executable, "-c", RECEIVER, SERVER, str(PORT), str(count), str(idle)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        lab.run(
            "peer-a",
            [sys.executable, "-c", SENDER, SERVER, str(PORT), str(count), str(size)],
            check=True,
        )
        output, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    result: dict[str, Any] = json.loads(output)
    return result


def delay_line_pids(lab: Lab) -> dict[str, list[int]]:
    """The delay-line processes of the lab, by host."""
    found = {host: builder.delay_line_pids(lab.namespace(host)) for host in lab.hosts}
    return {host: pids for host, pids in found.items() if pids}


def no_drops(lab: Lab, host: str, packets: int) -> bool:
    counters = builder.delay_queue(lab.namespace(host))
    assert counters is not None, f"no delay queue is bound in {host}"
    assert counters.queued >= packets, counters
    return counters.dropped_full == counters.dropped_socket == 0


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no namespace and no queue)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_burst_of_2000_datagrams_passes_whole_and_in_order_through_a_symmetric_nat() -> None:
    """Two delayed access links (nat-a's and the server's); the burst starts a new flow
    behind a NAT drawing random ports, so a packet held after conntrack would show up
    from ports of its own."""
    topology = builtin.pair(parse_nat("symmetric")).with_access_links(LinkShape(delay_ms=20))
    with built(topology, PREFIX) as lab:
        got = burst(lab, 2000, 1200)
        assert len(got["numbers"]) == 2000
        assert got["numbers"] == list(range(2000))
        assert len(got["sources"]) == 1, got["sources"][:5]
        assert got["sources"][0][0] == "203.0.113.10"
        assert no_drops(lab, "nat-a", 2000)
        assert no_drops(lab, "server", 2000)


def test_loss_and_rate_still_act_on_a_delayed_link() -> None:
    shape = LinkShape(delay_ms=10, loss_percent=50, rate_mbit=5)
    with built(builtin.pair().with_access_links(shape)) as lab:
        got = burst(lab, 400, 100)
        # two links each dropping half: a quarter arrives (400 all lost: p = 0.75^400)
        assert 0 < len(got["numbers"]) < 400
        assert got["numbers"] == sorted(got["numbers"])
        assert "rate 5Mbit" in lab.run("nat-a", ["tc", "qdisc", "show", "dev", "wan"]).stdout
        assert set(delay_line_pids(lab)) == {"server", "nat-a", "nat-b"}


def test_a_dead_delay_line_drops_instead_of_skipping_the_delay() -> None:
    with built(builtin.pair().with_access_links(LinkShape(delay_ms=10))) as lab:
        assert len(burst(lab, 20, 100)["numbers"]) == 20  # the path works
        (pid,) = delay_line_pids(lab)["server"]
        os.kill(pid, signal.SIGKILL)  # as if it crashed
        wait_until(lambda: not running(pid), 5.0, "the killed delay line to end")
        assert burst(lab, 20, 100, idle=1.0)["numbers"] == []


def test_lab_down_ends_every_delay_line() -> None:
    with built(builtin.pair().with_access_links(LinkShape(delay_ms=10))) as lab:
        found = delay_line_pids(lab)
        assert set(found) == {"server", "nat-a", "nat-b"}
        logs = [builder.delay_line_log(lab.namespace(host)) for host in found]
        assert all(log.exists() for log in logs)
    pids = [pid for group in found.values() for pid in group]
    assert [pid for pid in pids if running(pid)] == []
    assert netns.list_namespaces(PREFIX) == []
    assert not any(log.exists() for log in logs)
