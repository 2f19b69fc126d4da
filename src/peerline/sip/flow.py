"""Flows: the one connection or UDP 5-tuple a message came in on or must leave by.

A phone behind a NAT is reachable only over the flow it opened (RFC 5626 §3):
the registrar remembers that flow, and the proxy sends the phone's calls back
over it. A flow is a plain value; the adapter that owns the sockets says which
connection `connection` names, and reports when it closes.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.sip.methods import Transport

#: (IP literal, port), as sockets use them.
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Flow:
    """How to reach a peer: transport, our local address, its address, and for a
    stream the adapter's connection id (0 = "any connection, or open one")."""

    transport: Transport
    local: Address
    remote: Address
    connection: int = 0

    @property
    def reliable(self) -> bool:
        return self.transport.reliable

    @property
    def is_stream(self) -> bool:
        return self.transport is not Transport.UDP

    def describe(self) -> str:
        conn = f"#{self.connection}" if self.connection else ""
        return f"{self.transport.value.lower()}{conn} {_fmt(self.remote)} -> {_fmt(self.local)}"


def _fmt(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def uri_host(ip: str) -> str:
    """An IP as a URI or Via host: IPv6 in brackets."""
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
