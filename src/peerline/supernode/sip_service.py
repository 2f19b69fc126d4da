"""The SIP registrar and proxy of `peerline serve`: users, element, listeners.

SIP runs when the node has users (`--user`, `--users-file`): a registrar with
nobody allowed to register would only answer 401. `--sip-port 0` turns it off.
"""

from __future__ import annotations

import asyncio
import gc
import os
import ssl

from peerline import certs
from peerline.errors import UsageError
from peerline.net import format_address
from peerline.sip.digest import parse_algorithm
from peerline.sip.element import ElementConfig, SipElement
from peerline.sip.guard import GuardConfig
from peerline.sip.methods import Transport
from peerline.sip.transport_asyncio import SipServer
from peerline.supernode.config import ServeConfig
from peerline.supernode.metrics_http import Sample, counter_samples
from peerline.users import User, UserDirectory, parse_user, read_users_file


def load_users(config: ServeConfig) -> list[User]:
    """Users from the file first, then the flags (a flag wins over a file line)."""
    users: list[User] = []
    if config.users_file is not None:
        users += read_users_file(config.users_file)
    users += [parse_user(text) for text in config.user]
    return users


class SipService:
    """Owns the SIP element and its sockets for the supernode."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.users = UserDirectory(load_users(config))
        self._ha1_only = sum(1 for user in self.users if user.password is None)
        self.server: SipServer | None = None
        self.element: SipElement | None = None
        self._lines: list[str] = []

    @property
    def enabled(self) -> bool:
        return self.config.sip_port != 0 and len(self.users) > 0

    def _tls(self) -> ssl.SSLContext:
        config = self.config
        pair = certs.load_or_create(config.tls_cert, config.tls_key, config.state_dir)
        return certs.server_context(pair)

    async def start(self, ips: list[str]) -> None:
        if not self.enabled:
            return
        config = self.config
        loop = asyncio.get_running_loop()
        element_config = ElementConfig(
            domain=config.sip_domain,
            realm=config.auth_realm,
            secret=os.urandom(32),
            guard=GuardConfig(rate=config.rate_limit),
            digest_algorithms=tuple(parse_algorithm(a) for a in config.sip_digest),
        )
        self.element = SipElement(element_config, self.users, [], loop.time())
        self.server = server = SipServer(self.element)
        plans: list[tuple[Transport, int]] = [
            (Transport.UDP, config.sip_port),
            (Transport.TCP, config.sip_port),
        ]
        if config.sip_tls_port:
            plans.append((Transport.TLS, config.sip_tls_port))
        if config.sip_ws_port:
            plans.append((Transport.WS, config.sip_ws_port))
        if config.sip_wss_port:
            plans.append((Transport.WSS, config.sip_wss_port))
        for ip in ips:
            for transport, port in plans:
                local = (ip, port)
                try:
                    if transport is Transport.UDP:
                        await server.listen_udp(local)
                    elif transport in (Transport.TLS, Transport.WSS):
                        await server.listen_stream(local, transport, self._tls())
                    else:
                        await server.listen_stream(local, transport)
                except OSError as error:
                    raise UsageError(
                        f"cannot listen for SIP on {transport.value.lower()} "
                        f"{format_address(local)}: {error.strerror or error}"
                    ) from None
                label = f"SIP ({config.sip_domain})"
                self._lines.append(
                    f"  {label:28} {transport.value.lower():4} {format_address(local)}"
                )
        # What exists now (users, configuration, listeners) lives as long as the
        # process: keep the cyclic collector from walking it again and again (with
        # 100,000 users, each full collection would otherwise cost tens of ms).
        gc.collect()
        gc.freeze()

    def describe(self) -> list[str]:
        if not self.enabled:
            reason = "--sip-port 0" if self.config.sip_port == 0 else "no users"
            return [f"  SIP registrar/proxy off ({reason}; add users with --user NAME:PASSWORD)"]
        lines = [*self._lines, f"  SIP users: {len(self.users)}, realm {self.config.auth_realm}"]
        digests = [a.upper() for a in self.config.sip_digest]
        ha1_only = self._ha1_only
        if ha1_only and digests[0] != "MD5":
            lines.append(
                f"  SIP: {ha1_only} user(s) known only by an MD5 HA1 can register only with "
                "phones that answer MD5 (offer it first: --sip-digest MD5,SHA-256)"
            )
        return lines

    def samples(self) -> list[Sample]:
        """Live SIP figures for the metrics endpoint: bindings, connections and
        transactions now, and the element's counters (requests, registrations,
        503s under overload, failed authentications, flows that failed...)."""
        element, server = self.element, self.server
        if element is None or server is None:
            return []
        gauges: list[Sample] = [
            ("peerline_sip_bindings", "Registered contacts", "gauge", {}, element.store.count()),
            (
                "peerline_sip_connections",
                "Open SIP stream connections (TCP, TLS, WebSocket)",
                "gauge",
                {},
                server.connection_count,
            ),
            ("peerline_sip_transactions", "Live transactions", "gauge", {}, element.transactions),
            (
                "peerline_sip_busy",
                "Share of time the loop spent on SIP",
                "gauge",
                {},
                element.guard.busy,
            ),
        ]
        return gauges + counter_samples("peerline_sip", dict(element.counters))

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
