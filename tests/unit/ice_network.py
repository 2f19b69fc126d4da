"""A sans-IO network for ICE agent tests: hosts, NATs, relays, delay, loss, a fake clock.

It carries each `Transmit` an agent emits to whichever agent owns the destination
after `delay`, translating through a NAT when the sender sits behind one. A NAT
maps endpoint-independently or per destination (symmetric) and filters by
nothing, by address, or by address and port (RFC 4787 terms), so tests make real
server-reflexive and peer-reflexive situations happen without a socket.
`run_until` advances the clock to the next timer or arrival, bounded in steps.
A host may carry sidecars: sans-IO cores beside its agent (an extension such as
the birthday technique) that see its datagrams first and have timers of their own.
All addresses are documentation or private ranges and never leave this process.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

from peerline.ice.agent import Agent, Disposition, Transmit
from peerline.ice.candidate import Candidate
from peerline.ice.events import Event
from peerline.stun import MalformedMessage, Message, TransportAddress, is_stun, parse

STUN_SERVER = TransportAddress("198.51.100.200", 3478)
"""Where gathering 'sends' its Binding request: only its NAT mapping matters."""

RELAY_IP = "198.51.100.250"

E = TypeVar("E")


class Mapping(Enum):
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class Filtering(Enum):
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


@dataclass(eq=False)
class Nat:
    """One NAT with one public address; ports are handed out in order."""

    public_ip: str
    mapping: Mapping = Mapping.ENDPOINT_INDEPENDENT
    filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    first_port: int = 40000
    _ports: itertools.count[int] = field(init=False)
    _bindings: dict[object, int] = field(default_factory=dict, init=False)
    _inside: dict[int, TransportAddress] = field(default_factory=dict, init=False)
    _contacted: dict[int, set[TransportAddress]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._ports = itertools.count(self.first_port)

    def outbound(self, inside: TransportAddress, destination: TransportAddress) -> TransportAddress:
        """The public source of a datagram from `inside` to `destination`."""
        key: object = (
            inside if self.mapping is Mapping.ENDPOINT_INDEPENDENT else (inside, destination)
        )
        port = self._bindings.get(key)
        if port is None:
            port = self._bindings[key] = next(self._ports)
            self._inside[port] = inside
            self._contacted[port] = set()
        self._contacted[port].add(destination)
        return TransportAddress(self.public_ip, port)

    def inbound(self, port: int, source: TransportAddress) -> TransportAddress | None:
        """The inside address a datagram to our `port` from `source` reaches, or None."""
        inside = self._inside.get(port)
        if inside is None:
            return None
        contacted = self._contacted[port]
        if self.filtering is Filtering.ADDRESS_DEPENDENT:
            if all(c.ip != source.ip for c in contacted):
                return None
        elif self.filtering is Filtering.ADDRESS_AND_PORT_DEPENDENT and source not in contacted:
            return None
        return inside

    @property
    def bindings(self) -> int:
        return len(self._bindings)


@dataclass(frozen=True, slots=True)
class Packet:
    """A datagram on the wire: the source after any NAT, the destination before."""

    data: bytes
    sender: str
    source: TransportAddress
    destination: TransportAddress
    time: float

    @property
    def stun(self) -> Message | None:
        """The datagram as STUN, or None when it is something else."""
        try:
            return parse(self.data) if is_stun(self.data) else None
        except MalformedMessage:
            return None


class Sidecar(Protocol):
    """A sans-IO core beside a host's agent: offered each datagram before the
    agent (True: consumed), sending and waking up like the agent does."""

    def receive(
        self, data: bytes, base: TransportAddress, source: TransportAddress, now: float
    ) -> bool: ...

    def datagrams_to_send(self, now: float) -> list[Transmit]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(eq=False)
class Host:
    """An agent and the addresses it owns (its bases)."""

    name: str
    agent: Agent
    addresses: list[TransportAddress]
    nat: Nat | None = None
    relayed: set[TransportAddress] = field(default_factory=set)
    """Relayed bases: they send from the relay, past any NAT."""
    online: bool = True
    events: list[Event] = field(default_factory=list)
    event_times: list[float] = field(default_factory=list)
    """When each of `events` came out (the fake clock)."""
    delivered: list[tuple[bytes, TransportAddress, TransportAddress]] = field(default_factory=list)
    """Datagrams the agent said were not ICE: (data, base, source)."""
    sidecars: list[Sidecar] = field(default_factory=list)

    def timers(self) -> list[float]:
        """The agent's and the sidecars' next deadlines."""
        cores: list[Agent | Sidecar] = [self.agent, *self.sidecars]
        return [t for core in cores if (t := core.get_timer()) is not None]

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def time_of(self, kind: type[Event]) -> float:
        """When the first event of `kind` came out."""
        return next(
            t for t, e in zip(self.event_times, self.events, strict=False) if isinstance(e, kind)
        )


class Network:
    """Hosts on one fake internet, with a fake clock."""

    def __init__(self, *, delay: float = 0.01, loss: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self.delay = delay
        self.loss = loss
        self.hosts: list[Host] = []
        self.sent: list[Packet] = []
        """Every datagram put on the wire, in order (taps see them first)."""
        self.taps: list[Callable[[Packet], bool]] = []
        """Each may return False to drop a packet (a firewall, a vanished peer)."""
        self._rng = random.Random(seed)
        self._flight: list[tuple[float, int, Packet]] = []
        self._seq = itertools.count()
        self._relay_ports = itertools.count(50000)

    # -- building -----------------------------------------------------------------------

    def add(
        self, name: str, agent: Agent, addresses: list[tuple[str, int]], nat: Nat | None = None
    ) -> Host:
        host = Host(name, agent, [TransportAddress(*a) for a in addresses], nat)
        self.hosts.append(host)
        return host

    def gather(
        self, host: Host, *, srflx: bool = True, relay: bool = False, end: bool = True
    ) -> list[Candidate]:
        """Add host candidates, a server-reflexive one per base behind a NAT (as the
        STUN server would see it) and optionally a relayed one; return them."""
        added = []
        for preference, base in enumerate(list(host.addresses)):
            if base in host.relayed:
                continue
            local_preference = 65535 - preference
            added.append(Candidate.host(base, local_preference=local_preference))
            if srflx and host.nat is not None:
                mapped = host.nat.outbound(base, STUN_SERVER)
                added.append(
                    Candidate.server_reflexive(
                        mapped, base=base, server=STUN_SERVER, local_preference=local_preference
                    )
                )
            if relay:
                relayed = TransportAddress(RELAY_IP, next(self._relay_ports))
                host.addresses.append(relayed)
                host.relayed.add(relayed)
                mapped = base if host.nat is None else host.nat.outbound(base, STUN_SERVER)
                added.append(Candidate.relayed(relayed, mapped=mapped, server=STUN_SERVER))
        for candidate in added:
            host.agent.add_local_candidate(candidate)
        if end:
            host.agent.end_of_local_candidates()
        return added

    # -- running ------------------------------------------------------------------------

    def flush(self) -> None:
        """Put every datagram the agents have ready on the wire; collect events."""
        for host in self.hosts:
            if not host.online:
                continue
            for transmit in host.agent.datagrams_to_send(self.now):
                self.send_from(host, transmit.data, transmit.base, transmit.destination)
            for sidecar in host.sidecars:
                for transmit in sidecar.datagrams_to_send(self.now):
                    self.send_from(host, transmit.data, transmit.base, transmit.destination)
            while (event := host.agent.next_event()) is not None:
                host.events.append(event)
                host.event_times.append(self.now)

    def send_from(
        self, host: Host, data: bytes, base: TransportAddress, destination: TransportAddress
    ) -> None:
        assert base in host.addresses, f"{host.name} sent from {base}, not one of its bases"
        source = base
        if (
            host.nat is not None
            and base not in host.relayed
            and not self._inside(host, destination)
        ):
            source = host.nat.outbound(base, destination)
        packet = Packet(data, host.name, source, destination, self.now)
        self.sent.append(packet)
        if not all(tap(packet) for tap in self.taps):
            return
        if self.loss and self._rng.random() < self.loss:
            return
        heapq.heappush(self._flight, (self.now + self.delay, next(self._seq), packet))

    def _inside(self, host: Host, destination: TransportAddress) -> bool:
        """True when `destination` is behind the same NAT (same LAN: no translation)."""
        return any(other.nat is host.nat and destination in other.addresses for other in self.hosts)

    def _deliver(self, packet: Packet) -> None:
        destination = packet.destination
        for host in self.hosts:
            if host.nat is not None and destination.ip == host.nat.public_ip:
                inside = host.nat.inbound(destination.port, packet.source)
                if inside is None:
                    return  # filtered, or no binding: dropped silently
                destination = inside
                break
        sender = next(h for h in self.hosts if h.name == packet.sender)
        for host in self.hosts:
            if destination in host.addresses:
                if not host.online:
                    return
                private = host.nat is not None and destination not in host.relayed
                if private and destination == packet.destination and sender.nat is not host.nat:
                    return  # a private address behind another NAT: unreachable
                offered = (
                    s.receive(packet.data, destination, packet.source, self.now)
                    for s in host.sidecars
                )
                if any(offered):
                    return
                disposition = host.agent.receive_datagram(
                    packet.data, destination, packet.source, self.now
                )
                assert isinstance(disposition, Disposition)
                if disposition is Disposition.NOT_ICE:
                    host.delivered.append((packet.data, destination, packet.source))
                return

    def _next_time(self) -> float | None:
        times = [self._flight[0][0]] if self._flight else []
        times.extend(t for host in self.hosts if host.online for t in host.timers())
        return min(times, default=None)

    def step_to(self, when: float) -> None:
        """Advance the clock to `when`: deliver what arrives, fire due timers."""
        self.now = max(self.now, when)
        while self._flight and self._flight[0][0] <= self.now:
            _, _, packet = heapq.heappop(self._flight)
            self._deliver(packet)
        for host in self.hosts:
            if not host.online:
                continue
            for core in (host.agent, *host.sidecars):
                timer = core.get_timer()
                if timer is not None and timer <= self.now:
                    core.handle_timer(self.now)
        self.flush()

    def run_until(
        self, predicate: Callable[[], bool], limit: float, *, max_steps: int = 200_000
    ) -> bool:
        """Run until `predicate()` holds (True) or `limit` seconds of fake time pass
        (False). An agent that asks to be woken at the same instant over and over
        fails the test instead of looping."""
        deadline = self.now + limit
        self.flush()
        stuck = 0
        for _ in range(max_steps):
            if predicate():
                return True
            when = self._next_time()
            if when is None or when > deadline:
                self.step_to(deadline)
                return predicate()
            stuck = stuck + 1 if when <= self.now else 0
            assert stuck < 1000, f"busy loop at t={self.now}: the timer does not move"
            self.step_to(when)
        raise AssertionError(f"{max_steps} steps without reaching the predicate")

    def run_for(self, seconds: float) -> None:
        self.run_until(lambda: False, seconds)


def signal(sender: Host, receiver: Host, *, end: bool = True) -> None:
    """Carry `sender`'s credentials, options and candidates to `receiver`, as the
    offer/answer would (trickle: call again for candidates added later)."""
    local = sender.agent.local_credentials
    receiver.agent.set_remote_credentials(
        local.ufrag, local.pwd, options=sender.agent.config.ice_options
    )
    for candidate in sender.agent.local_candidates:
        receiver.agent.add_remote_candidate(candidate)
    if end:
        receiver.agent.end_of_remote_candidates()
