"""TURN peer policy: every special-purpose range is denied, however it is written."""

import pytest

from peerline.turn.policy import PeerPolicy, Refusal

DEFAULT = PeerPolicy.build(allow=[], server_addresses=["198.51.100.1", "2001:4860::1"])


@pytest.mark.parametrize(
    "peer",
    [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo to 127.0.0.1
        "::7f00:1",
        "224.0.0.1",
        "ff02::1",
        "fe80::1",
        "fc00::1",
        "255.255.255.255",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.5",
        "198.18.0.1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::ffff:0.0.0.0",
    ],
)
def test_special_purpose_peers_refused(peer: str) -> None:
    assert DEFAULT.check(peer) is not None, peer


def test_server_own_address_refused() -> None:
    policy = PeerPolicy.build(allow=[], server_addresses=["8.8.4.4"])
    assert policy.check("8.8.4.4") is Refusal.SERVER_ADDRESS
    assert policy.check("::ffff:8.8.4.4") is Refusal.SERVER_ADDRESS


@pytest.mark.parametrize("peer", ["8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_peers_allowed(peer: str) -> None:
    assert DEFAULT.check(peer) is None


def test_allow_list_wins_over_every_default_deny() -> None:
    policy = PeerPolicy.build(
        allow=["127.0.0.0/8", "203.0.113.0/24"], server_addresses=["127.0.0.1"]
    )
    assert policy.check("127.0.0.1") is None  # the server's own address included
    assert policy.check("::ffff:127.0.0.2") is None
    assert policy.check("203.0.113.20") is None
    assert policy.check("10.0.0.1") is Refusal.SPECIAL_PURPOSE


def test_garbage_is_refused_not_raised() -> None:
    assert DEFAULT.check("not-an-ip") is Refusal.UNSPECIFIED
