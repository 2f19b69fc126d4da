"""What the builder will do, checked without root: nothing in the root namespace,
the right NAT rules per profile, shaping at both ends of access links, delay lines in
the hosts that own them."""

import re
from ipaddress import IPv4Address

import pytest

from peerline.lab import builder, builtin
from peerline.lab.builder import network_namespace, plan
from peerline.lab.nftables import loss_ruleset, nat_ruleset
from peerline.lab.profiles import LinkShape, parse_nat
from peerline.lab.shaping import delay_line_argv, qdisc_lines
from peerline.lab.tools import LabError

PUBLIC = IPv4Address("203.0.113.10")


def test_every_veth_end_is_created_inside_a_lab_namespace() -> None:
    steps = plan(builtin.cgnat(), "plt-")
    assert steps.veths
    for line in steps.veths:
        ends = re.findall(r"netns (\S+)", line)
        assert len(ends) == 2, line
        assert all(end.startswith("plt-") for end in ends), line
    assert all(name.startswith("plt-") for name in steps.namespaces)
    assert len(set(steps.namespaces)) == len(steps.namespaces)
    assert set(steps.interfaces) <= set(steps.namespaces)


def test_pair_namespaces_and_routes() -> None:
    steps = plan(builtin.pair(), "pl-")
    assert set(steps.namespaces) == {
        "pl-inet",
        "pl-nat-a-lan",
        "pl-nat-b-lan",
        "pl-server",
        "pl-nat-a",
        "pl-peer-a",
        "pl-nat-b",
        "pl-peer-b",
    }
    assert network_namespace("pl-", "nat-a") == "pl-nat-a-lan"
    assert "addr add 203.0.113.2/24 dev eth0" in steps.interfaces["pl-server"]
    assert "addr add 10.1.0.1/24 dev lan" in steps.interfaces["pl-nat-a"]
    assert "route add default via 10.1.0.1 dev eth0" in steps.interfaces["pl-peer-a"]
    assert steps.interfaces["pl-peer-a"][0] == "link set dev lo up"
    assert not any("route" in line for line in steps.interfaces["pl-server"])
    assert steps.sysctls["pl-nat-a"] == ["net.ipv4.ip_forward=1"]
    assert set(steps.rulesets) == {"pl-nat-a", "pl-nat-b"}
    assert steps.qdiscs == {}


def test_udp_timeout_sets_both_conntrack_timeouts_in_the_nat_only() -> None:
    steps = plan(builtin.same_nat(parse_nat("full-cone,udp-timeout=5")), "pl-")
    assert steps.sysctls == {
        "pl-nat-a": [
            "net.ipv4.ip_forward=1",
            "net.netfilter.nf_conntrack_udp_timeout=5",
            "net.netfilter.nf_conntrack_udp_timeout_stream=5",
        ]
    }
    assert "timeout 5s" in steps.rulesets["pl-nat-a"]


@pytest.mark.parametrize(
    ("profile", "present", "absent"),
    [
        (
            "port-restricted-cone",
            ['oifname "wan" masquerade\n'],
            ["random", "dnat ip to", "@contacted"],
        ),
        ("symmetric", ["masquerade random,fully-random"], ['iifname "wan" dnat']),
        ("full-cone", ['iifname "wan" dnat ip to udp dport map @mapping'], ["@contacted"]),
        (
            "restricted-cone",
            [
                "update @contacted { udp sport . ip daddr }",
                'iifname "wan" udp dport . ip saddr @contacted dnat ip to udp dport map @mapping',
            ],
            ['iifname "wan" dnat'],
        ),
    ],
)
def test_nat_rules_per_profile(profile: str, present: list[str], absent: list[str]) -> None:
    rules = nat_ruleset(parse_nat(profile), PUBLIC)
    assert rules.startswith("table ip peerline {")
    assert 'iifname "wan" ct state new meta l4proto { tcp, udp } drop' in rules
    assert "update @mapping { udp sport : ct original ip saddr . ct original proto-src }" in rules
    assert "type filter hook postrouting priority 200" in rules
    for text in present:
        assert text in rules
    for text in absent:
        assert text not in rules


def test_hairpin_loops_back_and_its_absence_drops() -> None:
    on = nat_ruleset(parse_nat("port-restricted-cone,hairpin"), PUBLIC)
    assert 'iifname "lan" ip daddr 203.0.113.10 dnat ip to udp dport map @mapping' in on
    assert "ct status dnat snat ip to 203.0.113.10\n" in on
    assert 'iifname "lan"' not in on.split("chain input")[1]
    off = nat_ruleset(parse_nat("port-restricted-cone"), PUBLIC)
    assert 'iifname "lan" ip daddr 203.0.113.10 meta l4proto { tcp, udp } drop' in off
    symmetric = nat_ruleset(parse_nat("symmetric,hairpin"), PUBLIC)
    assert "snat ip to 203.0.113.10 random,fully-random" in symmetric


def test_loss_in_hundredths_of_a_percent() -> None:
    assert "numgen random mod 10000 < 150 drop" in loss_ruleset("wan", 1.5)
    assert 'iifname "wan" drop' in loss_ruleset("wan", 100)


def test_qdiscs_only_limit_the_rate() -> None:
    assert qdisc_lines("wan", LinkShape()) == []
    assert qdisc_lines("wan", LinkShape(delay_ms=25)) == []
    assert qdisc_lines("wan", LinkShape(rate_mbit=10)) == [
        "qdisc add dev wan root tbf rate 10mbit burst 5000 latency 100ms"
    ]
    assert qdisc_lines("wan", LinkShape(delay_ms=25, rate_mbit=1)) == [
        "qdisc add dev wan root tbf rate 1mbit burst 3000 latency 100ms"
    ]


def test_access_link_shaping_at_both_ends() -> None:
    shaped = builtin.pair().with_access_links(LinkShape(delay_ms=10, loss_percent=2, rate_mbit=5))
    steps = plan(shaped, "pl-")
    assert steps.qdiscs["pl-nat-a"] == [
        "qdisc add dev wan root tbf rate 5mbit burst 3000 latency 100ms"
    ]
    assert (
        "qdisc add dev nat-a root tbf rate 5mbit burst 3000 latency 100ms"
        in (steps.qdiscs["pl-inet"])
    )
    assert "pl-peer-a" not in steps.qdiscs
    assert "peerline_loss" in steps.rulesets["pl-server"]
    assert "table ip peerline" in steps.rulesets["pl-nat-a"]
    assert "peerline_loss" in steps.rulesets["pl-nat-a"]


def test_delay_is_a_delay_line_in_each_host_that_owns_an_access_link() -> None:
    steps = plan(builtin.cgnat().with_access_links(LinkShape(delay_ms=25)), "pl-")
    # The server, the carrier NAT and nat-b sit on the Internet; home-a and the peers
    # sit on LANs, and the Internet's bridge only switches.
    assert steps.delay_lines == {"pl-server": 25, "pl-cgn": 25, "pl-nat-b": 25}
    assert set(steps.iptables) == set(steps.delay_lines)
    assert steps.qdiscs == {}
    server = steps.iptables["pl-server"].splitlines()
    assert server[0] == "*raw"
    assert server[-1] == "COMMIT"
    assert "-A PREROUTING -i eth0 -j NFQUEUE --queue-num 25000" in server
    assert "-A OUTPUT -o eth0 -j NFQUEUE --queue-num 25000" in server
    assert not any("-i lan" in rule for rule in server)
    carrier = steps.iptables["pl-cgn"].splitlines()
    assert "-A PREROUTING -i wan -j NFQUEUE --queue-num 25000" in carrier
    assert "-A OUTPUT -o wan -j NFQUEUE --queue-num 25000" in carrier
    # what it forwards from its LAN to the Internet, not what it hairpins or keeps
    assert (
        "-A PREROUTING -i lan ! -d 100.64.0.0/10 -m addrtype ! --dst-type "
        "LOCAL,BROADCAST,MULTICAST -j NFQUEUE --queue-num 25000"
    ) in carrier
    assert not any("--queue-bypass" in rule for rule in carrier)


def test_delay_line_command() -> None:
    argv = delay_line_argv(12.5)
    assert argv[1:] == [
        "-m",
        "peerline.lab.delayline",
        "--queue",
        "25000",
        "--delay-ms",
        "12.5",
    ]


def test_delay_without_iptables_is_one_clear_line_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_build(names: object) -> None:
        raise AssertionError("a namespace was created")

    monkeypatch.setattr(builder.shutil, "which", lambda name: None)
    monkeypatch.setattr(builder.netns, "add", must_not_build)
    delayed = builtin.pair().with_access_links(LinkShape(delay_ms=5))
    with pytest.raises(LabError, match=r"--delay needs iptables \(Debian package iptables\)"):
        builder.build(delayed, "pl-")
