"""RFC 5780 NAT behaviour discovery: the tests, run over real UDP sockets.

Mapping (§4.3), filtering (§4.4) and hairpinning (§4.5) run concurrently on
separate sockets, so the whole check takes about one timeout when tests get no
answer. The binding lifetime (§4.6) is optional and slow: mappings are made on
many sockets at once and probed at growing delays with RESPONSE-PORT, then the
interval where they die is searched again at a finer step.
"""

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

from peerline.nat.classify import Observations
from peerline.net import Address, format_address
from peerline.stun import (
    AttributeType,
    ChangeRequest,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransactionConfig,
)
from peerline.stun.aioclient import StunClientHub, response_of

Progress = Callable[[str], None]

#: Pads Test I so that a cautious server (no larger answer than the request) can
#: still afford MAPPED-ADDRESS, used to detect address-rewriting ALGs.
_PADDING = bytes(64)


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    server: Address
    #: How long to wait for the first answer from the server (and at most for any test).
    timeout: float = 3.0
    lifetime: bool = False
    #: The longest binding lifetime to look for, in seconds.
    lifetime_max: float = 300.0


def _binding(
    *, change: ChangeRequest | None = None, response_port: int | None = None, padding: bool = False
) -> bytes:
    builder = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
    if change is not None:
        builder.add_change_request(change)
    if response_port is not None:
        builder.add_port(AttributeType.RESPONSE_PORT, response_port)
    if padding:
        builder.add(AttributeType.PADDING, _PADDING)
    return builder.encode(fingerprint=True)


def _transaction_config(timeout: float) -> TransactionConfig:
    """Retransmit fast and give up within `timeout`: silence is an answer in these tests."""
    rto = max(0.05, min(0.25, timeout / 8))
    rm = max(1, min(16, int((timeout - 7 * rto) / rto)))
    return TransactionConfig(rto=rto, rc=4, rm=rm)


def _mapped(message: Message | None) -> Address | None:
    if message is None or message.message_class is not MessageClass.SUCCESS:
        return None
    address = message.xor_mapped_address or message.mapped_address
    return None if address is None else (address.ip, address.port)


def local_ip_towards(server: Address) -> str:
    """The local address the kernel uses to reach `server` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


class NatProbe:
    """Runs the RFC 5780 tests against one server and gathers `Observations`."""

    def __init__(self, config: ProbeConfig, progress: Progress) -> None:
        self.config = config
        self.progress = progress
        self.local_ip = local_ip_towards(config.server)
        self.hub = StunClientHub()
        self.tx = _transaction_config(config.timeout)
        self.skipped: list[str] = []

    async def _ask(self, index: int, request: bytes, destination: Address) -> Message | None:
        try:
            return response_of(await self.hub.request(index, request, destination, self.tx))
        except MalformedMessage:
            return None

    async def run(self) -> Observations:
        try:
            return await self._run()
        finally:
            self.hub.close()

    async def _run(self) -> Observations:
        server = self.config.server
        mapping_socket = await self.hub.open((self.local_ip, 0))
        local = self.hub.local_address(mapping_socket)
        self.progress(f"test I: binding from {format_address(local)} to {format_address(server)}")
        first = await self._ask(mapping_socket, _binding(padding=True), server)
        mapped = _mapped(first)
        if first is None or mapped is None:
            return Observations(local=local, mapped=None, skipped=tuple(self.skipped))
        plain = first.mapped_address
        self.progress(f"  mapped address {format_address(mapped)}")
        other = first.other_address
        if other is None:
            self.skipped.append(
                "mapping, filtering and lifetime tests: the server sent no OTHER-ADDRESS "
                "(it has one address or no RFC 5780 support; run `peerline serve --alt-ip`)"
            )
            hairpin = await self._hairpin(mapping_socket, mapped)
            return Observations(
                local=local,
                mapped=mapped,
                plain_mapped=None if plain is None else (plain.ip, plain.port),
                hairpin=hairpin,
                skipped=tuple(self.skipped),
            )
        other_address = (other.ip, other.port)
        mapping_task = self._mapping(mapping_socket, mapped, other_address)
        filtering_task = self._filtering()
        hairpin_task = self._hairpin(mapping_socket, mapped)
        (alt_ip, alt_both), (change_both, change_port), hairpin = await asyncio.gather(
            mapping_task, filtering_task, hairpin_task
        )
        lifetime = await self._lifetime() if self.config.lifetime else None
        return Observations(
            local=local,
            mapped=mapped,
            plain_mapped=None if plain is None else (plain.ip, plain.port),
            mapped_alt_ip=alt_ip,
            mapped_alt_both=alt_both,
            filtering_change_both=change_both,
            filtering_change_port=change_port,
            hairpin=hairpin,
            lifetime_s=lifetime,
            skipped=tuple(self.skipped),
        )

    async def _mapping(
        self, index: int, mapped: Address, other: Address
    ) -> tuple[Address | None, Address | None]:
        server = self.config.server
        alt_ip = await self._ask(index, _binding(), (other[0], server[1]))
        mapped_alt_ip = _mapped(alt_ip)
        self.progress(
            f"mapping test II (alternate address): "
            f"{format_address(mapped_alt_ip) if mapped_alt_ip else 'no answer'}"
        )
        if mapped_alt_ip is None or mapped_alt_ip == mapped:
            return mapped_alt_ip, None
        alt_both = _mapped(await self._ask(index, _binding(), other))
        self.progress(
            f"mapping test III (alternate address and port): "
            f"{format_address(alt_both) if alt_both else 'no answer'}"
        )
        return mapped_alt_ip, alt_both

    async def _filtering(self) -> tuple[bool | None, bool | None]:
        """Filtering tests II and III at once, each on a fresh socket (so each has its
        own mapping, opened towards the primary address only): silence costs one timeout."""
        both, port = await asyncio.gather(
            self._filtering_test(ChangeRequest(change_ip=True, change_port=True)),
            self._filtering_test(ChangeRequest(change_port=True)),
        )
        self.progress(f"filtering test II (answer from other address and port): {both}")
        self.progress(f"filtering test III (answer from other port): {port}")
        if both is None:
            return None, None
        return both, None if both else port

    async def _filtering_test(self, change: ChangeRequest) -> bool | None:
        """Does an answer sent from elsewhere (as `change` asks) get in? None if untested."""
        server = self.config.server
        index = await self.hub.open((self.local_ip, 0))
        if _mapped(await self._ask(index, _binding(), server)) is None:
            return None
        return _mapped(await self._ask(index, _binding(change=change), server)) is not None

    async def _hairpin(self, mapping_socket: int, mapped: Address) -> bool | None:
        """Send a request from a second socket to our own mapped address; see if it arrives."""
        sender = await self.hub.open((self.local_ip, 0))
        request = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
        data = request.encode(fingerprint=True)
        arrival = await self._send_and_expect(sender, data, mapped, request.transaction_id)
        hairpin = arrival is not None and arrival[0] == mapping_socket
        self.progress(f"hairpinning (own request came back): {hairpin}")
        return hairpin

    async def _send_and_expect(
        self, sender: int, data: bytes, destination: Address, transaction_id: bytes
    ) -> tuple[int, Message] | None:
        """Send `data` a few times (for loss) until a message with its id arrives anywhere."""
        waiter = self.hub.expect(transaction_id)
        try:
            for attempt in range(4):
                self.hub.send(sender, data, destination)
                done, _ = await asyncio.wait({waiter}, timeout=min(0.25 * 2**attempt, 1.0))
                if done:
                    return waiter.result()
            return None
        finally:
            self.hub.forget(transaction_id)

    async def _alive_after(self, delay: float, start: float, index: int, port: int) -> bool:
        """Is the mapping of socket `index` (external port `port`) alive `delay` s after start?"""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start + delay - loop.time()))
        prober = await self.hub.open((self.local_ip, 0))
        request = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
        request.add_port(AttributeType.RESPONSE_PORT, port)
        data = request.encode(fingerprint=True)
        # The answer goes to our public address at `port`: it only reaches socket
        # `index` if that mapping still exists.
        arrival = await self._send_and_expect(
            prober, data, self.config.server, request.transaction_id
        )
        return arrival is not None and arrival[0] == index

    async def _fresh_mappings(self, count: int) -> list[tuple[int, int]]:
        """`count` new sockets with a mapping each: (socket index, external port)."""
        made = []
        for _ in range(count):
            index = await self.hub.open((self.local_ip, 0))
            mapped = _mapped(await self._ask(index, _binding(), self.config.server))
            if mapped is not None:
                made.append((index, mapped[1]))
        return made

    async def _probe_round(self, delays: list[float]) -> dict[float, bool]:
        loop = asyncio.get_running_loop()
        mappings = await self._fresh_mappings(len(delays))
        if len(mappings) < len(delays):
            return {}
        start = loop.time()
        results = await asyncio.gather(
            *(
                self._alive_after(delay, start, index, port)
                for delay, (index, port) in zip(delays, mappings, strict=True)
            )
        )
        for delay, alive in zip(delays, results, strict=True):
            self.progress(f"  binding after {delay:g} s: {'alive' if alive else 'gone'}")
        return dict(zip(delays, results, strict=True))

    async def _lifetime(self) -> float | None:
        self.progress("binding lifetime: probing mappings at growing delays (takes a while)")
        coarse = []
        delay = 1.0
        while delay <= self.config.lifetime_max:
            coarse.append(delay)
            delay *= 2
        outcome = await self._probe_round(coarse)
        if not outcome:
            self.skipped.append("binding lifetime: the server ignored RESPONSE-PORT")
            return None
        alive = [d for d in coarse if outcome[d]]
        dead = [d for d in coarse if not outcome[d]]
        if not dead:
            return max(alive)
        upper = min(dead)
        lower = max((d for d in alive if d < upper), default=0.0)
        step = (upper - lower) / 8
        fine = [lower + step * i for i in range(1, 8)]
        self.progress(f"binding lifetime is between {lower:g} and {upper:g} s; refining")
        outcome = await self._probe_round(fine)
        survived = [d for d in fine if outcome.get(d)]
        return round(max(survived, default=lower), 1)


async def probe_nat(config: ProbeConfig, progress: Progress) -> Observations:
    """Run every test `config` asks for and return what was observed."""
    return await NatProbe(config, progress).run()
