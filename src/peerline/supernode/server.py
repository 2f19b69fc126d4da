"""A supernode: every listener of `peerline serve` on one event loop.

Composes the sans-IO services with the asyncio transports; owns their lifetime.
"""

import asyncio
import ipaddress
from dataclasses import dataclass

from peerline import certs
from peerline.errors import PeerlineError, UsageError
from peerline.net import Address, format_address, interface_addresses
from peerline.supernode.config import ServeConfig
from peerline.supernode.metrics_http import MetricsServer, counter_samples, render, turn_samples
from peerline.supernode.sip_service import SipService
from peerline.supernode.stun_service import Rfc5780Addresses, StunService, stun_framer
from peerline.supernode.transports import (
    DatagramHandler,
    StreamLimits,
    StreamListener,
    Transport,
    UdpRegistry,
)
from peerline.supernode.turn_service import TurnService, turn_settings
from peerline.turn.channeldata import stream_framer


@dataclass(frozen=True, slots=True)
class Listening:
    transport: Transport
    local: Address
    what: str


def listen_addresses(config: ServeConfig) -> list[str]:
    """The configured addresses, or every address of this host (one socket each)."""
    if config.listen:
        return list(config.listen)
    return sorted({entry.ip for entry in interface_addresses()}, key=ipaddress.ip_address)


class Supernode:
    """STUN (and, as they land, TURN, SIP and HTTP) for the peers behind NATs."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.listening: list[Listening] = []
        self._udp = UdpRegistry()
        self._streams: list[StreamListener] = []
        rfc5780 = None
        if config.alt_ip is not None and config.primary_ip is not None:
            rfc5780 = Rfc5780Addresses(
                config.primary_ip, config.alt_ip, config.stun_port, config.rfc5780_alt_port
            )
        self.stun = StunService(config, rfc5780, asyncio.get_event_loop().time())
        self.sip = SipService(config)
        #: TURN, when a credential source is configured (made in `start`: it needs the loop).
        self.turn: TurnService | None = None
        self._handler: DatagramHandler = self.stun.handle
        self.metrics: MetricsServer | None = None

    async def start(self) -> None:
        try:
            await self._start()
        except OSError as error:
            await self.stop()
            raise UsageError(f"cannot listen: {error.strerror or error}") from None
        except PeerlineError:
            await self.stop()
            raise

    async def _open_udp(self, local: Address, what: str) -> None:
        try:
            await self._udp.open(local, self._handler)
        except OSError as error:
            raise UsageError(
                f"cannot listen on udp {format_address(local)}: {error.strerror or error}"
            ) from None
        self.listening.append(Listening(Transport.UDP, local, what))

    async def _open_stream(self, local: Address, transport: Transport, what: str) -> None:
        tls = None
        if transport is Transport.TLS:
            pair = certs.load_or_create(
                self.config.tls_cert, self.config.tls_key, self.config.state_dir
            )
            tls = certs.server_context(pair)
        turn = self.turn
        listener = StreamListener(
            local,
            transport,
            self._handler,
            framer=stun_framer if turn is None else stream_framer,
            limits=StreamLimits(),
            tls=tls,
            on_close=None if turn is None else turn.stream_closed,
        )
        if turn is not None:
            turn.add_stream_listener(listener)
        try:
            await listener.start()
        except OSError as error:
            raise UsageError(
                f"cannot listen on {transport} {format_address(local)}: {error.strerror or error}"
            ) from None
        self._streams.append(listener)
        self.listening.append(Listening(transport, local, what))

    async def _start(self) -> None:
        config = self.config
        settings = turn_settings(config, listen_addresses(config))
        if settings is not None:
            self.turn = TurnService(*settings, self._udp)
            self._handler = self.turn.front(self.stun.handle)
        if config.metrics_port:
            self.metrics = MetricsServer(config.metrics_listen, config.metrics_port, self.figures)
            await self.metrics.start()
        what = "STUN" if self.turn is None else "STUN, TURN"
        for ip in listen_addresses(config):
            await self._open_udp((ip, config.stun_port), what)
            await self._open_stream((ip, config.stun_port), Transport.TCP, what)
            if config.tls_port:
                await self._open_stream((ip, config.tls_port), Transport.TLS, what)
        if config.alt_ip is not None and config.primary_ip is not None:
            alt_port = config.rfc5780_alt_port
            for local in (
                (config.primary_ip, alt_port),
                (config.alt_ip, config.stun_port),
                (config.alt_ip, alt_port),
            ):
                await self._open_udp(local, "STUN (RFC 5780 alternate)")
        await self.sip.start(listen_addresses(config))

    def describe(self) -> list[str]:
        """Human lines: what is served, where."""
        lines = [
            f"  {item.what:28} {item.transport:4} {format_address(item.local)}"
            for item in self.listening
        ]
        if self.config.rfc5780:
            lines.append(
                f"  RFC 5780 behaviour discovery on: primary {self.config.primary_ip}, "
                f"alternate {self.config.alt_ip}, ports {self.config.stun_port}/"
                f"{self.config.rfc5780_alt_port}"
            )
        else:
            lines.append("  RFC 5780 behaviour discovery off (enable with --alt-ip)")
        if self.config.rate_limit.enabled:
            lines.append(
                f"  per-source limit: {self.config.rate:g} responses/s, burst {self.config.burst:g}"
            )
        if self.turn is not None:
            lines += self.turn.describe()
        else:
            lines.append("  TURN off (give --user, --users-file or --auth-secret)")
        if self.metrics is not None:
            where = format_address((self.metrics.host, self.metrics.port))
            lines.append(f"  metrics: http://{where}/metrics")
        lines += self.sip.describe()
        return ["peerline supernode", *lines]

    def figures(self) -> str:
        """The live figures as Prometheus text."""
        samples = counter_samples("peerline_stun", self.stun.counters)
        if self.turn is not None:
            samples += turn_samples(self.turn.core.stats)
        samples += self.sip.samples()
        return render(samples)

    async def stop(self) -> None:
        await self.sip.stop()
        if self.turn is not None:
            await self.turn.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        self._udp.close()
        for listener in self._streams:
            await listener.close()
        self._streams.clear()
