"""`--delay`, `--loss` and `--rate` on every link to the Internet."""

import subprocess
import time

import pytest

from peerline.lab import builtin, proof
from peerline.lab.lab import Lab, teardown
from peerline.lab.netns import list_namespaces
from peerline.lab.profiles import LinkShape
from peerline.lab.tools import LabError
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


def test_delay_is_added_one_way_on_each_access_link() -> None:
    topology = builtin.pair().with_access_links(LinkShape(delay_ms=50))
    teardown(PREFIX)
    try:
        lab = Lab.up(topology, prefix=PREFIX)
    except LabError as error:
        failure = str(error)
    else:
        failure = ""
    if failure:
        assert "netem" in failure
        assert list_namespaces(PREFIX) == [], "a failed build left namespaces behind"
        pytest.skip(f"this kernel has no netem: {failure}")
    with lab, lab.probe("server") as server, lab.probe("peer-a") as inside:
        vantage = proof.Vantage.open(server, lab.addresses("server"))
        sock = inside.open()
        proof.mapped_address(sock, vantage)  # ARP and conntrack settled
        start = time.monotonic()
        proof.mapped_address(sock, vantage)
        one_way = time.monotonic() - start
    # nat-a's link and the server's link: 2 x 50 ms one way
    assert one_way >= 0.095, one_way
