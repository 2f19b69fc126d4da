"""NAT profiles and modifiers as users type them; link shapes."""

import pytest

from peerline.errors import UsageError
from peerline.lab.profiles import LinkShape, NatSpec, Profile, parse_nat
from peerline.nat.classify import Behaviour


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("full-cone", NatSpec(Profile.FULL_CONE)),
        ("symmetric", NatSpec(Profile.SYMMETRIC)),
        ("none", NatSpec(Profile.NONE)),
        (
            "port-restricted-cone,hairpin,udp-timeout=5",
            NatSpec(Profile.PORT_RESTRICTED_CONE, hairpin=True, udp_timeout=5),
        ),
        ("restricted-cone, udp-timeout=30", NatSpec(Profile.RESTRICTED_CONE, udp_timeout=30)),
    ],
)
def test_parse_nat(text: str, expected: NatSpec) -> None:
    assert parse_nat(text) == expected
    assert parse_nat(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cone", "unknown NAT profile 'cone' (profiles: none, full-cone"),
        ("", "unknown NAT profile ''"),
        ("full-cone,hairpinning", "unknown NAT modifier 'hairpinning'"),
        ("full-cone,hairpin=yes", "unknown NAT modifier 'hairpin=yes'"),
        ("full-cone,udp-timeout", "unknown NAT modifier 'udp-timeout'"),
        ("full-cone,udp-timeout=five", "udp-timeout must be a whole number"),
        ("full-cone,udp-timeout=0", "udp-timeout must be 1-86400"),
        ("none,hairpin", "'none' means no NAT"),
        ("none,udp-timeout=5", "'none' means no NAT"),
    ],
)
def test_parse_nat_refuses_with_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_nat(text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_profiles_promise_rfc_4787_behaviours() -> None:
    ei, ad, apd = (
        Behaviour.ENDPOINT_INDEPENDENT,
        Behaviour.ADDRESS_DEPENDENT,
        Behaviour.ADDRESS_AND_PORT_DEPENDENT,
    )
    assert {profile.value: (profile.mapping, profile.filtering) for profile in Profile} == {
        "none": (None, None),
        "full-cone": (ei, ei),
        "restricted-cone": (ei, ad),
        "port-restricted-cone": (ei, apd),
        "symmetric": (apd, apd),
    }


def test_link_shape_bounds_and_words() -> None:
    assert not LinkShape().is_shaped
    assert str(LinkShape(20, 1.5, 10)) == "delay 20 ms, loss 1.5%, rate 10 Mbit/s"
    with pytest.raises(UsageError, match="loss must be 0-100"):
        LinkShape(loss_percent=101)
    with pytest.raises(UsageError, match="delay must be"):
        LinkShape(delay_ms=-1)
    with pytest.raises(UsageError, match="rate must be"):
        LinkShape(rate_mbit=float("nan"))
