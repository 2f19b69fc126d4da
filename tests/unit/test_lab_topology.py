"""Built-in topologies, validation, and topology files: all without root."""

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from peerline.errors import UsageError
from peerline.lab import builtin
from peerline.lab.profiles import LinkShape, parse_nat
from peerline.lab.topofile import from_dict, load_file, to_dict
from peerline.lab.topology import INTERNET, Host, Topology


def addresses(topology: Topology) -> dict[str, list[str]]:
    return {host.name: [str(a) for a in host.addresses] for host in topology.hosts}


def test_pair_has_the_documented_addresses() -> None:
    topology = builtin.pair(parse_nat("full-cone"), parse_nat("symmetric"))
    assert addresses(topology) == {
        "server": ["203.0.113.1", "203.0.113.2"],
        "nat-a": ["203.0.113.10"],
        "peer-a": ["10.1.0.2"],
        "nat-b": ["203.0.113.20"],
        "peer-b": ["10.2.0.2"],
    }
    peer_a = topology.host("peer-a")
    assert topology.gateway(peer_a) == IPv4Address("10.1.0.1")
    assert topology.public_address(peer_a) == IPv4Address("203.0.113.10")
    assert topology.host("nat-b").nat == parse_nat("symmetric")
    assert topology.host("nat-a").lan == IPv4Network("10.1.0.0/24")


def test_same_nat_puts_both_peers_behind_nat_a() -> None:
    topology = builtin.same_nat(parse_nat("port-restricted-cone,hairpin"))
    assert [host.name for host in topology.members("nat-a")] == ["peer-a", "peer-b"]
    assert addresses(topology)["peer-b"] == ["10.1.0.3"]


def test_cgnat_stacks_a_home_nat_behind_a_carrier_nat() -> None:
    topology = builtin.cgnat(parse_nat("full-cone"), parse_nat("symmetric"))
    peer_a = topology.host("peer-a")
    assert [nat.name for nat in topology.nats_in_front(peer_a)] == ["home-a", "cgn"]
    assert addresses(topology)["home-a"] == ["100.64.0.2"]
    assert topology.host("cgn").lan == IPv4Network("100.64.0.0/10")
    assert topology.gateway(topology.host("home-a")) == IPv4Address("100.64.0.1")
    assert topology.public_address(peer_a) == IPv4Address("203.0.113.30")
    assert topology.host("home-a").nat == parse_nat("full-cone")


def test_none_puts_the_peer_where_its_nat_would_be() -> None:
    none = parse_nat("none")
    assert addresses(builtin.pair(none, none))["peer-a"] == ["203.0.113.10"]
    assert addresses(builtin.same_nat(none))["peer-b"] == ["203.0.113.11"]
    cgnat = builtin.cgnat(none, parse_nat("symmetric"))
    assert cgnat.host("peer-a").network == "cgn"
    assert addresses(cgnat)["peer-a"] == ["100.64.0.2"]
    assert addresses(builtin.cgnat(none, none))["peer-a"] == ["203.0.113.30"]


def test_builtin_refuses_nats_the_topology_does_not_have() -> None:
    with pytest.raises(UsageError, match="'same-nat' has no nat-b; it takes --nat-a"):
        builtin.builtin("same-nat", {"nat-b": parse_nat("symmetric")})
    with pytest.raises(UsageError, match="unknown topology 'star'"):
        builtin.builtin("star", {})
    assert builtin.builtin("cgnat", {"cgn": parse_nat("full-cone")}).host("cgn").nat == (
        parse_nat("full-cone")
    )


def test_access_links_are_the_links_into_the_internet() -> None:
    shape = LinkShape(delay_ms=20)
    shaped = builtin.pair().with_access_links(shape)
    assert {host.name for host in shaped.hosts if host.link == shape} == {
        "server",
        "nat-a",
        "nat-b",
    }


def peer(name: str, network: str, address: str) -> Host:
    return Host(name, network, (IPv4Address(address),))


def nat(name: str, network: str, address: str, lan: str) -> Host:
    return Host(
        name, network, (IPv4Address(address),), nat=parse_nat("full-cone"), lan=IPv4Network(lan)
    )


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (lambda: [peer("Peer", INTERNET, "203.0.113.5")], "bad host name 'Peer'"),
        (lambda: [peer("a-very-long-hostname", INTERNET, "203.0.113.5")], "bad host name"),
        (lambda: [peer("inet", INTERNET, "203.0.113.5")], "reserved"),
        (lambda: [peer("home-lan", INTERNET, "203.0.113.5")], "reserved"),
        (lambda: [peer("a", INTERNET, "203.0.113.5"), peer("a", INTERNET, "203.0.113.6")], "twice"),
        (lambda: [peer("a", INTERNET, "10.0.0.5")], "not a host address of 'internet'"),
        (lambda: [peer("a", INTERNET, "203.0.113.255")], "not a host address"),
        (
            lambda: [peer("a", INTERNET, "203.0.113.5"), peer("b", INTERNET, "203.0.113.5")],
            "used by",
        ),
        (lambda: [peer("a", "nowhere", "10.0.0.5")], "neither 'internet' nor a NAT"),
        (
            lambda: [nat("n", INTERNET, "203.0.113.5", "10.1.0.0/24"), peer("a", "n", "10.1.0.1")],
            "the NAT itself",
        ),
        (
            lambda: [
                nat("n", "m", "10.2.0.2", "10.1.0.0/24"),
                nat("m", "n", "10.1.0.2", "10.2.0.0/24"),
            ],
            "loop",
        ),
        (lambda: [nat("n", INTERNET, "203.0.113.5", "203.0.113.0/25")], "overlaps"),
        (
            lambda: [
                nat("n", INTERNET, "203.0.113.5", "10.0.0.0/8"),
                nat("m", "n", "10.0.0.2", "10.1.0.0/16"),
            ],
            "overlaps",
        ),
    ],
)
def test_validation(hosts: Callable[[], list[Host]], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Topology("t", tuple(hosts()))


def test_sibling_lans_may_repeat() -> None:
    topology = Topology(
        "two-homes",
        (
            nat("home-1", INTERNET, "203.0.113.5", "192.168.1.0/24"),
            nat("home-2", INTERNET, "203.0.113.6", "192.168.1.0/24"),
            peer("alice", "home-1", "192.168.1.2"),
            peer("bob", "home-2", "192.168.1.2"),
        ),
    )
    assert [host.name for host in topology.hosts] == ["home-1", "alice", "home-2", "bob"]


def test_a_nat_cannot_be_none() -> None:
    with pytest.raises(UsageError, match="cannot have profile 'none'"):
        Host(
            "n",
            INTERNET,
            (IPv4Address("203.0.113.5"),),
            nat=parse_nat("none"),
            lan=IPv4Network("10.0.0.0/24"),
        )


EXAMPLE = """
name = "example"

[nats.nat-a]
address = "203.0.113.10"
lan = "10.1.0.0/24"
profile = "full-cone,hairpin"

[hosts.server]
addresses = ["203.0.113.1", "203.0.113.2"]

[hosts.peer-a]
network = "nat-a"
address = "10.1.0.2"

[links.nat-a]
delay = 20
loss = 1
rate = 10
"""


def test_topology_file(tmp_path: Path) -> None:
    path = tmp_path / "example.toml"
    path.write_text(EXAMPLE)
    topology = load_file(path)
    assert topology.name == "example"
    assert topology.host("nat-a").nat == parse_nat("full-cone,hairpin")
    assert topology.host("nat-a").link == LinkShape(20, 1, 10)
    assert topology.gateway(topology.host("peer-a")) == IPv4Address("10.1.0.1")
    assert from_dict(to_dict(topology)) == topology


@pytest.mark.parametrize(
    "topology",
    [builtin.pair(), builtin.same_nat(), builtin.cgnat(), builtin.pair(parse_nat("none"))],
)
def test_the_state_schema_round_trips(topology: Topology) -> None:
    assert from_dict(to_dict(topology)) == topology


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[hosts.a\n", "not valid TOML"),
        ("colour = 'blue'", "unknown key 'colour' in the top level"),
        ("[hosts.a]\nadress = '203.0.113.5'", "unknown key 'adress' in \\[hosts.a\\]"),
        ("[hosts.a]\nnetwork = 'internet'", "needs exactly one of 'address' or 'addresses'"),
        ("[hosts.a]\naddress = 'x'", "not an IPv4 address"),
        ("[hosts.a]\naddress = 5", "must be a string"),
        ("[nats.n]\naddress = '203.0.113.5'\nlan = '10.0.0.0/24'", "needs 'profile'"),
        (
            "[nats.n]\naddress = '203.0.113.5'\nlan = '10.0.0.0/33'\nprofile = 'symmetric'",
            "not an IPv4 network",
        ),
        (
            "[nats.n]\naddress = '203.0.113.5'\nlan = '10.0.0.0/24'\nprofile = 'open'",
            "unknown NAT profile",
        ),
        ("[hosts.a]\naddress = '203.0.113.5'\n[links.b]\ndelay = 5", "names no host"),
        ("[hosts.a]\naddress = '203.0.113.5'\n[links.a]\ndelay = 'slow'", "must be a number"),
        ("hosts = 5", "must be tables"),
        ("", "has no hosts"),
    ],
)
def test_topology_file_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as raised:
        load_file(path)
    assert str(raised.value).startswith(f"topology file {path}")
    assert "\n" not in str(raised.value)


def test_missing_topology_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read topology file"):
        load_file(tmp_path / "none.toml")
