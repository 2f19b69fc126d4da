"""Which addresses are the SIP element's own, and how it reaches others (no I/O, no DNS).

The element listens on some (transport, address) pairs and serves one domain.
From those it decides whether a URI or a Via names it, which of its addresses a
message to a peer leaves from, what it writes in its Via and Record-Route, and
the flow towards a URI that carries an IP address.
"""

from __future__ import annotations

import functools
import ipaddress

from peerline.sip._syntax import Params
from peerline.sip.fields import Via
from peerline.sip.flow import Address, Flow, uri_host
from peerline.sip.methods import Transport
from peerline.sip.uri import SipUri, Uri

#: URI `transport` parameter -> transport.
TRANSPORT_PARAM = {
    "udp": Transport.UDP,
    "tcp": Transport.TCP,
    "tls": Transport.TLS,
    "ws": Transport.WS,
    "wss": Transport.WSS,
}
#: How our Record-Route writes each transport. TLS is `sip:...;transport=tls`, as
#: phones expect (baresip cannot send to `sips:...;transport=tcp`, RFC 5630's
#: spelling of it); RFC 7118 registers only "ws", and `sips:` says WSS is secure.
_RECORD_ROUTE_TRANSPORT = {
    Transport.UDP: "",
    Transport.TCP: ";transport=tcp",
    Transport.TLS: ";transport=tls",
    Transport.WS: ";transport=ws",
    Transport.WSS: ";transport=ws",
}


class Addresses:
    """The element's listeners and domain, and the decisions made from them."""

    def __init__(self, domain: str) -> None:
        self.domain = domain.lower()
        self._listeners: dict[Transport, list[Address]] = {}
        self._hosts: set[str] = {self.domain}
        self._ports: set[int] = set()

    def add_listener(self, transport: Transport, address: Address) -> None:
        self._listeners.setdefault(transport, []).append(address)
        self._hosts.add(canonical_ip(address[0]))
        self._ports.add(address[1])

    # -- is it us? -----------------------------------------------------------
    def is_our_via(self, via: Via) -> bool:
        host = canonical_ip(via.host[1:-1] if via.host.startswith("[") else via.host)
        return host in self._hosts and (via.port is None or via.port in self._ports)

    def is_our_domain(self, uri: SipUri) -> bool:
        return canonical_ip(uri.host_address) in self._hosts

    def is_us(self, uri: Uri) -> bool:
        """The URI names this server: our domain or address, and one of our ports."""
        return (
            isinstance(uri, SipUri)
            and canonical_ip(uri.host_address) in self._hosts
            and (uri.port is None or uri.port in self._ports)
        )

    def is_server_uri(self, uri: Uri) -> bool:
        """The URI names the server itself, no user (OPTIONS sip:example.org)."""
        return self.is_us(uri) and isinstance(uri, SipUri) and not uri.user

    # -- what we write -------------------------------------------------------
    def advertised(self, flow: Flow) -> Address:
        """The address to put in our Via and Record-Route for a flow: the local one,
        or the domain when we listen on a wildcard address."""
        if flow.local[0] in ("0.0.0.0", "::"):
            return self.domain, flow.local[1]
        return flow.local

    def via(self, flow: Flow, branch: str) -> Via:
        """Our Via for a request we send on `flow` (built, not parsed: it is ours)."""
        host, port = self.advertised(flow)
        return Via(flow.transport.value, uri_host(host), port, Params((("branch", branch),)))

    def record_route(self, flow: Flow, token: str) -> str:
        """Our Record-Route (and Path) entry for `flow`, carrying its flow token."""
        host, port = self.advertised(flow)
        transport = _RECORD_ROUTE_TRANSPORT.get(flow.transport, "")
        scheme = "sips" if flow.transport is Transport.WSS else "sip"
        return f"<{scheme}:{token}@{uri_host(host)}:{port}{transport};lr>"

    # -- reaching others -----------------------------------------------------
    def local_for(self, transport: Transport, ip: str) -> Address | None:
        """Our listener of `transport` in the family of `ip`, if we have one."""
        v6 = ":" in ip
        for address in self._listeners.get(transport, ()):
            if (":" in address[0]) == v6:
                return address
        return None

    def flow_to(self, uri: Uri) -> Flow | None:
        """A new flow towards a URI with an IP address (no DNS in the core)."""
        if not isinstance(uri, SipUri):
            return None
        host = uri.maddr or uri.host_address
        try:
            ip = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            return None
        transport = TRANSPORT_PARAM.get(uri.transport or ("tls" if uri.secure else "udp"))
        if transport is None or transport in (Transport.WS, Transport.WSS):
            return None
        port = uri.port or (5061 if transport is Transport.TLS else 5060)
        local = self.local_for(transport, ip)
        if local is None:
            return None
        return Flow(transport, local, (ip, port))


@functools.lru_cache(maxsize=4096)
def canonical_ip(host: str) -> str:
    """An IP literal in its one spelling, or a name in lower case (cached: the same
    few addresses and names come with every message)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
