"""Hairpinning on and off behind one NAT, and a short UDP binding timeout expiring."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from peerline.lab import builtin, proof
from peerline.lab.lab import Lab
from peerline.lab.profiles import parse_nat
from peerline.lab.topology import Topology
from tests.lab.conftest import built, side_by_side

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def hairpin(lab: Lab) -> proof.HairpinObservation:
    with lab.probe("server") as server, lab.probe("peer-a") as a, lab.probe("peer-b") as b:
        vantage = proof.Vantage.open(server, lab.addresses("server"))
        return proof.observe_hairpin(receiver=a, sender=b, vantage=vantage)


@pytest.mark.parametrize("profile", ["port-restricted-cone", "full-cone", "restricted-cone"])
def test_hairpin_on_delivers_from_the_senders_public_mapping(profile: str) -> None:
    with built(builtin.same_nat(parse_nat(f"{profile},hairpin"))) as lab:
        seen = hairpin(lab)
    assert seen.seen_from == seen.sender_mapped, seen
    assert seen.receiver_mapped[0] == "203.0.113.10"


def test_hairpin_on_symmetric_delivers_from_the_public_address() -> None:
    with built(builtin.same_nat(parse_nat("symmetric,hairpin"))) as lab:
        seen = hairpin(lab)
    assert seen.seen_from is not None, seen
    assert seen.seen_from[0] == "203.0.113.10"


@pytest.mark.parametrize("profile", ["port-restricted-cone", "full-cone", "symmetric"])
def test_hairpin_off_drops(profile: str) -> None:
    with built(builtin.same_nat(parse_nat(profile))) as lab:
        seen = hairpin(lab)
    assert seen.seen_from is None, seen


def timeouts() -> Topology:
    """Three profiles with a 5 s binding timeout and one with the kernel's, side by side."""
    profiles = [
        "port-restricted-cone,udp-timeout=5",
        "full-cone,udp-timeout=5",
        "symmetric,udp-timeout=5",
        "port-restricted-cone",
    ]
    return side_by_side("timeouts", profiles)


def test_short_udp_timeout_expires_and_the_kernels_does_not() -> None:
    silence = 7.0  # the 5 s timeout, plus slack for the kernel's lazy expiry

    def watch(lab: Lab, index: int) -> proof.ExpiryObservation:
        with lab.probe("server") as server, lab.probe(f"peer-{index}") as inside:
            ports = (7000 + 10 * index, 7001 + 10 * index)  # one vantage per watcher
            vantage = proof.Vantage.open(server, lab.addresses("server"), ports)
            return proof.observe_expiry(inside, vantage, silence)

    with built(timeouts()) as lab:
        sysctl = lab.run("nat-1", ["sysctl", "-n", "net.netfilter.nf_conntrack_udp_timeout"])
        assert sysctl.stdout.strip() == "5"
        with ThreadPoolExecutor(max_workers=4) as pool:  # the four wait at the same time
            short_cone, short_full, short_symmetric, default = pool.map(
                lambda index: watch(lab, index), [1, 2, 3, 4]
            )
    for seen in (short_cone, short_full, short_symmetric):
        assert seen.reply_before, seen
        assert not seen.reply_after, f"the binding outlived its 5 s timeout: {seen}"
    assert default.reply_before
    assert default.reply_after, f"the kernel's default timeout expired within 7 s: {default}"
