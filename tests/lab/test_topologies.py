"""The built-in topologies as built: addresses, routes, and both NATs of cgnat."""

import pytest

from peerline.lab import builtin, proof
from peerline.lab.profiles import parse_nat
from peerline.lab.topology import Topology
from tests.lab.conftest import built

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def test_cgnat_translates_twice() -> None:
    topology = builtin.cgnat(parse_nat("port-restricted-cone"), parse_nat("symmetric"))
    with built(topology) as lab:
        assert lab.nats_in_front("peer-a") == (lab.host("home-a"), lab.host("cgn"))
        with lab.probe("server") as server, lab.probe("peer-a") as peer_a:
            vantage = proof.Vantage.open(server, lab.addresses("server"))
            sock = peer_a.open()
            outermost = proof.mapped_address(sock, vantage)
            filtering = proof.observe_filtering(peer_a, vantage)
        with lab.probe("cgn") as carrier, lab.probe("peer-a") as peer_a:
            # the carrier NAT's own LAN side sees what the home NAT made of peer-a
            listener = carrier.open("100.64.0.1", 7000)
            sock = peer_a.open()
            sock.send(listener.local, "inner")
            inner = listener.receive(["inner"])
        with lab.probe("server") as server, lab.probe("peer-b") as peer_b:
            vantage = proof.Vantage.open(server, lab.addresses("server"))
            peer_b_seen = proof.mapped_address(peer_b.open(), vantage)
    assert outermost[0] == "203.0.113.30"
    assert inner["inner"][0] == "100.64.0.2"
    assert (filtering.same_endpoint, filtering.other_port, filtering.other_address) == (
        True,
        False,
        False,
    )
    assert peer_b_seen[0] == "203.0.113.20"


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        (builtin.pair(), {"server": "203.0.113.1", "peer-a": "10.1.0.2", "peer-b": "10.2.0.2"}),
        (builtin.same_nat(), {"peer-a": "10.1.0.2", "peer-b": "10.1.0.3"}),
        (
            builtin.pair(parse_nat("none"), parse_nat("none")),
            {"peer-a": "203.0.113.10", "peer-b": "203.0.113.20"},
        ),
    ],
    ids=["pair", "same-nat", "pair-none"],
)
def test_hosts_have_their_addresses_and_reach_the_server(
    topology: Topology, expected: dict[str, str]
) -> None:
    with built(topology) as lab:
        server_addresses = lab.run("server", ["ip", "-4", "-o", "addr"]).stdout
        assert "203.0.113.1/24" in server_addresses
        assert "203.0.113.2/24" in server_addresses
        with lab.probe("server") as server:
            vantage = proof.Vantage.open(server, lab.addresses("server"))
            for host, address in expected.items():
                shown = lab.run(host, ["ip", "-4", "-o", "addr", "show", "scope", "global"])
                assert f" {address}/" in shown.stdout, shown.stdout
                if host != "server":
                    with lab.probe(host) as inside:
                        seen = proof.mapped_address(inside.open(), vantage)
                    assert seen[0] == lab.public_address(host)
