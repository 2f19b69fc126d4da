"""Topology files (TOML) and their twin, the lab's state (JSON): one schema, both ways.

```toml
name = "two-homes"                 # optional; default: the file name without .toml
internet = "203.0.113.0/24"        # optional; the public segment

[nats.nat-a]
network = "internet"               # where its public side sits (default "internet")
address = "203.0.113.10"
lan = "10.1.0.0/24"                # its inside network; the NAT takes .1
profile = "full-cone,hairpin"      # PROFILE[,hairpin][,udp-timeout=SECONDS]

[hosts.server]
addresses = ["203.0.113.1", "203.0.113.2"]

[hosts.peer-a]
network = "nat-a"                  # behind nat-a, default route via 10.1.0.1
address = "10.1.0.2"

[links.nat-a]                      # impairments of nat-a's uplink, each direction
delay = 20                         # ms, one way
loss = 1                           # percent
rate = 10                          # Mbit/s
```
"""

import tomllib
from collections.abc import Mapping
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from pathlib import Path
from typing import Any

from peerline.errors import UsageError
from peerline.lab.profiles import LinkShape, parse_nat
from peerline.lab.topology import DEFAULT_INTERNET, INTERNET, Host, Topology

_TOP_KEYS = frozenset({"name", "internet", "nats", "hosts", "links"})
_NAT_KEYS = frozenset({"network", "address", "lan", "profile"})
_HOST_KEYS = frozenset({"network", "address", "addresses"})
_LINK_KEYS = frozenset({"delay", "loss", "rate"})


def load_file(path: Path) -> Topology:
    """The topology in TOML file `path`; any problem is one UsageError naming the file."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise UsageError(f"cannot read topology file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"topology file {path} is not valid TOML: {error}") from None
    try:
        return from_dict(data, default_name=path.stem)
    except UsageError as error:
        raise UsageError(f"topology file {path}: {error}") from None


def from_dict(data: Mapping[str, Any], default_name: str = "custom") -> Topology:
    """A topology from the file's schema (parsed TOML or the lab's JSON state)."""
    _check_keys(data, _TOP_KEYS, "the top level")
    name = _text(data.get("name", default_name), "name")
    internet = _network(data.get("internet", str(DEFAULT_INTERNET)), "internet")
    links = _tables(data.get("links", {}), "links")
    hosts: list[Host] = []
    for nat_name, table in _tables(data.get("nats", {}), "nats").items():
        where = f"[nats.{nat_name}]"
        _check_keys(table, _NAT_KEYS, where)
        hosts.append(
            Host(
                nat_name,
                _text(table.get("network", INTERNET), f"{where} network"),
                (_address(_required(table, "address", where), f"{where} address"),),
                nat=parse_nat(_text(_required(table, "profile", where), f"{where} profile")),
                lan=_network(_required(table, "lan", where), f"{where} lan"),
                link=_link(links.pop(nat_name, {}), nat_name),
            )
        )
    for host_name, table in _tables(data.get("hosts", {}), "hosts").items():
        where = f"[hosts.{host_name}]"
        _check_keys(table, _HOST_KEYS, where)
        hosts.append(
            Host(
                host_name,
                _text(table.get("network", INTERNET), f"{where} network"),
                _addresses(table, where),
                link=_link(links.pop(host_name, {}), host_name),
            )
        )
    if links:
        raise UsageError(f"[links.{next(iter(links))}] names no host or NAT of the topology")
    return Topology(name, tuple(hosts), internet)


def to_dict(topology: Topology) -> dict[str, Any]:
    """The file schema of `topology`; `from_dict` reads it back to an equal topology."""
    nats: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    links: dict[str, Any] = {}
    for host in topology.hosts:
        if host.nat is not None:
            nats[host.name] = {
                "network": host.network,
                "address": str(host.address),
                "lan": str(host.lan),
                "profile": str(host.nat),
            }
        else:
            hosts[host.name] = {
                "network": host.network,
                "addresses": [str(address) for address in host.addresses],
            }
        if host.link.is_shaped:
            links[host.name] = {
                "delay": host.link.delay_ms,
                "loss": host.link.loss_percent,
                "rate": host.link.rate_mbit,
            }
    return {
        "name": topology.name,
        "internet": str(topology.internet),
        "nats": nats,
        "hosts": hosts,
        "links": links,
    }


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise UsageError(f"unknown key {key!r} in {where} (known: {known})")


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise UsageError(f"{where} needs {key!r}")
    return table[key]


def _tables(value: Any, where: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise UsageError(f"{where} must be tables like [{where}.NAME]")
    return dict(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where} must be a string, not {value!r}")
    return value


def _address(value: Any, where: str) -> IPv4Address:
    try:
        return IPv4Address(_text(value, where))
    except AddressValueError:
        raise UsageError(f"{where}: not an IPv4 address: {value!r}") from None


def _network(value: Any, where: str) -> IPv4Network:
    try:
        return IPv4Network(_text(value, where))
    except (AddressValueError, NetmaskValueError, ValueError):
        raise UsageError(f"{where}: not an IPv4 network like 10.1.0.0/24: {value!r}") from None


def _addresses(table: Mapping[str, Any], where: str) -> tuple[IPv4Address, ...]:
    if ("address" in table) == ("addresses" in table):
        raise UsageError(f"{where} needs exactly one of 'address' or 'addresses'")
    if "address" in table:
        return (_address(table["address"], f"{where} address"),)
    values = table["addresses"]
    if not isinstance(values, list):
        raise UsageError(f"{where} addresses must be a list of strings")
    return tuple(_address(value, f"{where} addresses") for value in values)


def _link(table: Mapping[str, Any], name: str) -> LinkShape:
    where = f"[links.{name}]"
    _check_keys(table, _LINK_KEYS, where)
    values: dict[str, float] = {}
    for key in _LINK_KEYS:
        value = table.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where} {key} must be a number, not {value!r}")
        values[key] = float(value)
    return LinkShape(values["delay"], values["loss"], values["rate"])
