"""Each NAT profile maps and filters as RFC 4787 says it should, seen with plain UDP.

One lab holds a NAT of every profile (and a host with no NAT), each with a peer
behind it; the server's two addresses give three vantage sockets.
"""

from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from peerline.lab import proof
from peerline.lab.lab import Lab
from peerline.lab.topology import INTERNET, Host, Topology
from tests.lab.conftest import built, side_by_side

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

PROFILES = ["full-cone", "restricted-cone", "port-restricted-cone", "symmetric"]
#: Written out here, not taken from the library: what must get in after one packet
#: out to ip1:p1, from (ip1:p1, ip1:p2, ip2:p1).
GETS_IN = {
    "full-cone": (True, True, True),
    "restricted-cone": (True, True, False),
    "port-restricted-cone": (True, False, False),
    "symmetric": (True, False, False),
}


def zoo() -> Topology:
    """A NAT of every profile, and `open`: a host on the Internet with no NAT."""
    topology = side_by_side("zoo", PROFILES)
    open_host = Host("open", INTERNET, (IPv4Address("203.0.113.99"),))
    return Topology("zoo", (*topology.hosts, open_host))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with built(zoo()) as lab:
        yield lab


def peer_of(profile: str) -> str:
    return f"peer-{PROFILES.index(profile) + 1}"


@pytest.fixture
def vantage(lab: Lab) -> Iterator[proof.Vantage]:
    with lab.probe("server") as server:
        yield proof.Vantage.open(server, lab.addresses("server"))


@pytest.mark.parametrize("profile", PROFILES)
def test_mapping(lab: Lab, vantage: proof.Vantage, profile: str) -> None:
    host = peer_of(profile)
    with lab.probe(host) as inside:
        seen = proof.observe_mapping(inside, vantage)
    sources = [seen.primary, seen.other_port, seen.other_address]
    assert all(source is not None for source in sources), sources
    assert {source[0] for source in sources if source} == {lab.public_address(host)}
    ports = {source[1] for source in sources if source}
    if profile == "symmetric":
        assert len(ports) == 3, f"a new port per destination, saw {sources}"
    else:
        assert ports == {seen.local[1]}, f"one preserved port for every destination, saw {sources}"


@pytest.mark.parametrize("profile", PROFILES)
def test_filtering(lab: Lab, vantage: proof.Vantage, profile: str) -> None:
    with lab.probe(peer_of(profile)) as inside:
        seen = proof.observe_filtering(inside, vantage)
    assert (seen.same_endpoint, seen.other_port, seen.other_address) == GETS_IN[profile]


@pytest.mark.parametrize("profile", PROFILES)
def test_nothing_gets_in_unsolicited(lab: Lab, vantage: proof.Vantage, profile: str) -> None:
    host = peer_of(profile)
    with lab.probe(host) as inside:
        assert not proof.observe_unsolicited(inside, vantage, lab.public_address(host))


def test_none_is_reachable_unsolicited_and_untranslated(lab: Lab, vantage: proof.Vantage) -> None:
    with lab.probe("open") as inside:
        assert proof.observe_unsolicited(inside, vantage, "203.0.113.99")
        seen = proof.observe_mapping(inside, vantage)
    assert seen.primary == seen.other_port == seen.other_address == ("203.0.113.99", seen.local[1])


@pytest.mark.parametrize("profile", [*PROFILES, "none"])
def test_check_host_agrees_with_profile(lab: Lab, profile: str) -> None:
    """What the demo prints: every line holds for every profile."""
    host = "open" if profile == "none" else peer_of(profile)
    checks = proof.check_host(lab, host)
    assert all(check.ok for check in checks), checks
