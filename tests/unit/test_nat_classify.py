"""RFC 5780 outcomes -> RFC 4787 behaviours, classic names and groups."""

import pytest

from peerline.nat.classify import Behaviour, ClassicType, Group, Observations, classify

LOCAL = ("10.1.0.2", 40000)
PUBLIC = ("203.0.113.10", 40000)
EIM = Behaviour.ENDPOINT_INDEPENDENT
ADM = Behaviour.ADDRESS_DEPENDENT
APDM = Behaviour.ADDRESS_AND_PORT_DEPENDENT


def nat(**kw: object) -> Observations:
    base: dict[str, object] = {
        "local": LOCAL,
        "mapped": PUBLIC,
        "mapped_alt_ip": PUBLIC,
        "mapped_alt_both": PUBLIC,
        "filtering_change_both": False,
        "filtering_change_port": False,
        "hairpin": False,
    }
    base.update(kw)
    return Observations(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("both", "port", "filtering", "classic"),
    [
        (True, True, EIM, ClassicType.FULL_CONE),
        (False, True, ADM, ClassicType.RESTRICTED_CONE),
        (False, False, APDM, ClassicType.PORT_RESTRICTED_CONE),
    ],
)
def test_cone_nats(both: bool, port: bool, filtering: Behaviour, classic: ClassicType) -> None:
    report = classify(nat(filtering_change_both=both, filtering_change_port=port))
    assert report.nat is True
    assert report.mapping is EIM
    assert report.filtering is filtering
    assert report.classic_type is classic
    assert report.group is Group.B
    assert report.port_preservation is True


def test_hairpinning_makes_group_a() -> None:
    assert classify(nat(hairpin=True)).group is Group.A


def test_symmetric_address_and_port_dependent() -> None:
    report = classify(
        nat(mapped_alt_ip=("203.0.113.10", 1111), mapped_alt_both=("203.0.113.10", 2222))
    )
    assert report.mapping is APDM
    assert report.classic_type is ClassicType.SYMMETRIC
    assert report.group is Group.F


def test_address_dependent_mapping() -> None:
    report = classify(
        nat(mapped_alt_ip=("203.0.113.10", 1111), mapped_alt_both=("203.0.113.10", 1111))
    )
    assert report.mapping is ADM
    assert report.group is Group.F


def test_no_nat_open_and_firewalled() -> None:
    open_host = classify(nat(mapped=LOCAL, filtering_change_both=True))
    assert (open_host.nat, open_host.classic_type) == (False, ClassicType.OPEN)
    walled = classify(nat(mapped=LOCAL))
    assert walled.classic_type is ClassicType.SYMMETRIC_FIREWALL


def test_udp_blocked() -> None:
    report = classify(Observations(local=LOCAL, mapped=None))
    assert report.udp is False
    assert report.classic_type is ClassicType.UDP_BLOCKED


def test_alg_and_port_preservation() -> None:
    report = classify(nat(mapped=("203.0.113.10", 5555), plain_mapped=("10.1.0.2", 40000)))
    assert report.alg is True
    assert report.port_preservation is False


def test_single_address_server_reports_what_it_can() -> None:
    report = classify(Observations(local=LOCAL, mapped=PUBLIC, skipped=("server has one address",)))
    assert report.nat is True
    assert report.mapping is None
    assert report.filtering is None
    assert report.skipped == ("server has one address",)
    json = report.to_json()
    for key in (
        "udp",
        "public_address",
        "nat",
        "mapping",
        "filtering",
        "hairpinning",
        "port_preservation",
        "binding_lifetime_s",
        "classic_type",
        "group",
    ):
        assert key in json
