"""`--delay`, `--loss` and `--rate` on every link to the Internet."""

import shutil
import subprocess
import time

import pytest

from peerline.lab import builtin, proof
from peerline.lab.profiles import LinkShape
from tests.lab.conftest import PREFIX, built

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def test_full_loss_drops_everything_and_rate_puts_a_bucket_at_both_ends() -> None:
    topology = builtin.pair().with_access_links(LinkShape(loss_percent=100, rate_mbit=5))
    with built(topology) as lab:
        with lab.probe("server") as server, lab.probe("peer-a") as inside:
            vantage = proof.Vantage.open(server, lab.addresses("server"))
            seen = proof.observe_mapping(inside, vantage)
        assert (seen.primary, seen.other_port, seen.other_address) == (None, None, None)
        qdisc = lab.run("nat-a", ["tc", "qdisc", "show", "dev", "wan"]).stdout
        assert "tbf" in qdisc
        assert "rate 5Mbit" in qdisc
        # the other end of the link is the bridge port in the Internet's namespace
        bridge_side = subprocess.run(
            ["tc", "-n", f"{PREFIX}inet", "qdisc", "show", "dev", "nat-a"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert "rate 5Mbit" in bridge_side.stdout
        # the LAN link is not an access link: left alone
        assert "tbf" not in lab.run("peer-a", ["tc", "qdisc", "show", "dev", "eth0"]).stdout


@pytest.mark.skipif(
    shutil.which("iptables-restore") is None,
    reason="--delay needs iptables (Debian package iptables)",
)
def test_delay_is_added_one_way_on_each_access_link() -> None:
    topology = builtin.pair().with_access_links(LinkShape(delay_ms=50))
    with built(topology) as lab, lab.probe("server") as server, lab.probe("peer-a") as inside:
        vantage = proof.Vantage.open(server, lab.addresses("server"))
        sock = inside.open()
        proof.mapped_address(sock, vantage)  # ARP and conntrack settled
        start = time.monotonic()
        public = proof.mapped_address(sock, vantage)
        out = time.monotonic() - start
        start = time.monotonic()
        vantage.primary.send(public, "back")
        back = sock.receive(["back"], proof.ARRIVAL_S)
        back_s = time.monotonic() - start
    # nat-a's link and the server's link: 2 x 50 ms one way, in each direction
    assert out >= 0.095, out
    assert "back" in back
    assert back_s >= 0.095, back_s
