"""Addresses: parsing what users type, printing what we show, and finding our own."""

import ipaddress
import socket
from dataclasses import dataclass

import psutil

from peerline.errors import UsageError

#: A transport address as the socket layer uses it: (IP literal, port).
Address = tuple[str, int]


def format_address(address: Address) -> str:
    """`1.2.3.4:5` or `[::1]:5`, the way URIs and logs write them."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_ip(text: str) -> str:
    """An IP literal in canonical form, or a `UsageError` that names the bad text."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise UsageError(f"not an IP address: {text!r}") from None


def parse_port(text: str | int) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"port out of range 0-65535: {port}")
    return port


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal -> (host, port)."""
    text = text.strip()
    if not text:
        raise UsageError("empty server address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"bad address {text!r}: expected [IPv6]:PORT")
        return host, parse_port(rest[1:]) if rest else default_port
    if text.count(":") > 1:  # a bare IPv6 literal has no port
        return parse_ip(text), default_port
    host, sep, port = text.partition(":")
    return host, parse_port(port) if sep else default_port


def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> Address:
    """The first address `host` resolves to, as a socket address; one clear error if none."""
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UsageError(f"cannot resolve {host!r}: {error}") from None
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    interface: str
    ip: str

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.ip else socket.AF_INET

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.ip).is_loopback

    @property
    def is_link_local(self) -> bool:
        return ipaddress.ip_address(self.ip).is_link_local


def interface_addresses() -> list[InterfaceAddress]:
    """Every unicast IPv4/IPv6 address of this host, link-local IPv6 excluded.

    Servers bind one socket per address (rather than a wildcard) so that every
    UDP answer leaves from the very address the request was sent to.
    """
    found: list[InterfaceAddress] = []
    for name, addresses in psutil.net_if_addrs().items():
        for entry in addresses:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = entry.address.split("%", 1)[0]
            candidate = InterfaceAddress(name, str(ipaddress.ip_address(ip)))
            if candidate.family == socket.AF_INET6 and candidate.is_link_local:
                continue
            found.append(candidate)
    return found
