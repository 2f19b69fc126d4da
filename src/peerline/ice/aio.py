"""The asyncio ICE adapter: sockets, relays and timers around the sans-IO agent.

`IceTransport` owns one UDP socket per host address, the TURN allocations and
one `Agent`. It does no ICE itself, only what aioquic's asyncio adapter does for
QUIC: feed each datagram in, send what the cores want sent, and keep one timer
armed at the earliest deadline, re-armed only when that deadline moved.

Each datagram on a host socket is demultiplexed by who sent it and what it is:
an answer to one of our gathering queries goes to the `Gatherer`; anything from
a TURN server this socket talks to goes to that allocation (ChannelData and
QUIC share first bytes, so the source decides, RFC 9443); STUN Binding traffic
of the peer goes to the agent; what is left is application data (QUIC) from a
peer address ICE knows, for the `PathListener`. Data a peer sends through a
relay comes back out of the allocation and takes the same path, with the
relayed address as its base.

The transport is also the session's `DatagramPath`: `send` goes over whatever
pair is selected now, and a pair change is invisible to the session except
through `path_changed`.

Between two peerline peers whose NATs call for it (one maps per destination,
the other does not), the transport also runs the birthday technique
(`peerline.ice.birthday`): the side behind the symmetric NAT opens extra
sockets (ephemeral ports, whatever `port_range` says) that stay open only if
a pair comes to use them, and every datagram on a socket the technique uses
is offered to its `BirthdayRun` before the agent. Each side starts when it has
both descriptions; the answerer may have them long before the offerer (a
person carries the answer back), so a run that gave up before the peer ever
checked us runs once more when it does (`Agent.peer_checked_at`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, cast

from peerline.aio import DeadlineTimer
from peerline.errors import PeerlineError
from peerline.ice.agent import Agent, Disposition, Transmit
from peerline.ice.birthday import (
    BIRTHDAY_OPTION,
    BirthdayOutcome,
    BirthdayPlan,
    BirthdayReport,
    BirthdayRole,
    BirthdayRun,
    Mapping,
    plan_birthday,
)
from peerline.ice.candidate import Candidate
from peerline.ice.checklist import PairInfo
from peerline.ice.config import Role
from peerline.ice.description import IceDescription, parse_description
from peerline.ice.errors import IceUsageError
from peerline.ice.events import (
    ConsentLost,
    Failed,
    IceRestarted,
    NewPeerReflexiveCandidate,
    RoleChanged,
    SelectedPairChanged,
)
from peerline.ice.gather import (
    CandidateGathered,
    Gatherer,
    IceTransportConfig,
    ServerFailed,
    StunServer,
    TurnServer,
    same_scope,
    select_host_addresses,
)
from peerline.ice.messages import keepalive_indication
from peerline.ice.relay import RelayError, RelayLink
from peerline.ice.sdp import Credentials
from peerline.net import Address, format_address, interface_addresses
from peerline.session.path import PathInfo, PathListener
from peerline.stun import TransportAddress, is_stun

logger = logging.getLogger(__name__)

_IDLE_GUARD = 0.005
"""If a core keeps asking for a deadline already past without moving it, wait this
long before asking again rather than spin."""


class IceFailed(PeerlineError):  # noqa: N818 (an outcome, like the agent's Failed event)
    """ICE ended without a working pair (or the transport was closed first)."""


def path_info(pair: PairInfo) -> PathInfo:
    """The selected pair as the session sees it."""
    local, remote = pair.local, pair.remote
    return PathInfo(
        local_type=local.type.value,
        remote_type=remote.type.value,
        local_address=format_address(local.address),
        remote_address=format_address(remote.address),
        relayed=pair.relayed,
    )


class _HostSocket(asyncio.DatagramProtocol):
    """One host candidate's socket; everything it hears goes to the transport."""

    def __init__(self, owner: IceTransport) -> None:
        self._owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        self.base = TransportAddress("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        name = self.transport.get_extra_info("sockname")
        self.base = TransportAddress(str(name[0]).split("%", 1)[0], int(name[1]))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._owner._on_host_datagram(self, data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable): checks time out or consent decides."""

    def sendto(self, data: bytes, destination: Address) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, destination)


class IceTransport:
    """One ICE data stream (one component) over real sockets; see the module docstring.

    Use: `await start()` (opens the sockets and begins gathering; candidates
    trickle to `on_candidate`, then None for end-of-candidates), exchange
    `local_description()` and `set_remote_description()` with the peer, `await
    connected(timeout)`, then `send` and the listener's `datagram_received`;
    `await close()` in the end (or use it as an async context manager).
    The offerer is `Role.CONTROLLING`.
    """

    def __init__(
        self,
        config: IceTransportConfig | None = None,
        *,
        role: Role,
        listener: PathListener | None = None,
        on_candidate: Callable[[Candidate | None], None] | None = None,
        name: str = "ice",
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.config = config or IceTransportConfig()
        self.listener = listener
        self._on_candidate = on_candidate
        self._log = logging.LoggerAdapter(logger, {"ice": name})
        ice = self.config.ice
        if self.config.birthday.enabled and BIRTHDAY_OPTION not in ice.ice_options:
            ice = dataclasses.replace(ice, ice_options=(*ice.ice_options, BIRTHDAY_OPTION))
        self._agent = Agent(role=role, config=ice, name=name)
        self._gatherer = Gatherer(self.config)
        self._sockets: dict[TransportAddress, _HostSocket] = {}
        self._relays: list[RelayLink] = []
        self._relayed: dict[TransportAddress, RelayLink] = {}
        self._peer_addresses: set[TransportAddress] = set()
        self._timer = DeadlineTimer(self._loop, self._fire)
        self._last_fired = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected: asyncio.Future[PathInfo] = self._loop.create_future()
        self._gathered: asyncio.Future[None] = self._loop.create_future()
        self._relays_pending = len(self.config.turn_servers)
        self._route: tuple[Callable[[bytes, Address], None], Address] | None = None
        self._path: PathInfo | None = None
        self._started = False
        self._closed = False
        self._remote_credentials: Credentials | None = None
        self._remote_mapping = Mapping.UNKNOWN
        self._birthday_planned = False
        self._birthday: BirthdayRun | None = None
        self._birthday_ended_run: BirthdayRun | None = None
        self._birthday_retry: BirthdayPlan | None = None
        """The plan to run once more when the peer first checks us (it was late)."""
        self._extra_sockets: dict[TransportAddress, _HostSocket] = {}
        """The birthday opener's extra sockets (those no pair uses close when it ends)."""
        self.server_failures: list[str] = []
        """One line per STUN/TURN server that gave nothing (it cost its timeout)."""

    # -- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the host sockets (their candidates are known when this returns) and
        gather the rest in the background."""
        if self._started:
            return
        self._started = True
        addresses = select_host_addresses(interface_addresses(), self.config)
        for ip in addresses:
            try:
                host = await self._open_socket(ip)
            except OSError as error:
                self._log.warning("cannot bind a UDP socket on %s: %s", ip, error)
                continue
            self._sockets[host.base] = host
            self._gatherer.add_host(host.base, self._loop.time())
        if not self._sockets:
            raise IceFailed(f"no usable local address (looked at {addresses or 'none'})")
        self._spawn(self._gather())
        self._service()

    async def _open_socket(self, ip: str) -> _HostSocket:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        ports: range | list[int] = [0]
        if self.config.port_range is not None:
            first, last = self.config.port_range
            ports = range(first, last + 1)
        error: OSError | None = None
        for port in ports:
            try:
                _, host = await self._loop.create_datagram_endpoint(
                    lambda: _HostSocket(self), local_addr=(ip, port), family=family
                )
            except OSError as failed:
                error = failed
                continue
            return host
        raise error or OSError(f"no free port on {ip}")

    async def close(self) -> None:
        """Stop ICE, give the allocations back, close every socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._agent.close()
        if self._birthday is not None:
            self._birthday.stop()
        self._route = None
        self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(relay.close() for relay in self._relays), return_exceptions=True)
        for host in (*self._sockets.values(), *self._extra_sockets.values()):
            if host.transport is not None:
                host.transport.close()
        for future in (self._connected, self._gathered):
            if not future.done():
                future.set_exception(IceFailed("the ICE transport was closed"))
                future.exception()  # retrieved: nobody may be waiting

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """An owned task: cancelled by `close`, and its failure fails `connected`."""
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        failure = task.exception()
        self._log.error("ICE transport task failed", exc_info=failure)
        if not self._connected.done():
            self._connected.set_exception(IceFailed(f"internal error: {failure!r}"))

    # -- gathering ----------------------------------------------------------------------

    async def _gather(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._resolve_stun_servers())
            for server in self.config.turn_servers:
                group.create_task(self._allocate(server))

    async def _resolve_stun_servers(self) -> None:
        async with asyncio.TaskGroup() as group:
            for server in self.config.stun_servers:
                group.create_task(self._resolve_stun_server(server))
        self._gatherer.finish()
        self._service()

    async def _resolve_stun_server(self, server: StunServer) -> None:
        for address in await self._resolve(server.host, server.port, str(server)):
            self._gatherer.add_stun_server_address(server, address, self._loop.time())
        self._service()

    async def _resolve(self, host: str, port: int, what: str) -> list[Address]:
        """At most one address per family; a name that does not resolve costs the
        timeout and is reported, nothing more."""
        try:
            async with asyncio.timeout(self.config.stun_timeout):
                infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as error:
            self._server_failed(what, f"cannot resolve {host!r}: {error or 'timed out'}")
            return []
        found: dict[int, Address] = {}
        for family, _, _, _, sockaddr in infos:
            found.setdefault(family, (str(sockaddr[0]), int(sockaddr[1])))
        return list(found.values())

    async def _allocate(self, server: TurnServer) -> None:
        try:
            await self._allocate_on(server)
        finally:
            self._relays_pending -= 1
            self._service()

    async def _allocate_on(self, server: TurnServer) -> None:
        addresses = await self._resolve(server.host, server.port, str(server))
        wanted = [a for a in addresses if (":" in a[0]) == (server.family == 6)] or addresses
        if not wanted:
            return
        address = wanted[0]
        host = None
        if not server.transport.reliable:
            host = self._socket_toward(address)
            if host is None:
                self._server_failed(str(server), "no local address of its family")
                return
        relay = RelayLink(
            server,
            address,
            base=None if host is None else host.base,
            write_udp=None if host is None else host.sendto,
            on_data=self._on_relayed,
            on_lost=self._on_relay_lost,
            timeout=self.config.turn_timeout,
        )
        self._relays.append(relay)
        try:
            allocated = await relay.allocate(self.config.turn_timeout)
        except (RelayError, OSError, TimeoutError) as error:
            self._relays.remove(relay)
            await relay.close(timeout=0.1)
            reason = str(error) or f"no answer within {self.config.turn_timeout:g} s"
            self._server_failed(str(server), reason)
            return
        relayed = TransportAddress(*allocated.relayed)
        self._relayed[relayed] = relay
        for peer in self._peer_addresses:
            relay.permit(peer.ip)
        mapped = allocated.mapped if allocated.mapped[0] else None
        self._gatherer.add_relayed(
            relayed,
            mapped if host is not None else None,
            server=address,
            base=None if host is None else host.base,
        )
        self._service()

    def _socket_toward(self, server: Address) -> _HostSocket | None:
        """The host socket a UDP allocation runs on: same family, and loopback only
        for a loopback server."""
        fallback = None
        for base, host in self._sockets.items():
            if (":" in base.ip) != (":" in server[0]):
                continue
            if same_scope(base.ip, server[0]):
                return host
            fallback = fallback or host
        return fallback

    def _server_failed(self, server: str, reason: str) -> None:
        self._gatherer.server_failed(server, reason)
        self._service()

    # -- descriptions -------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._agent.role

    @property
    def local_candidates(self) -> list[Candidate]:
        return self._agent.local_candidates

    @property
    def gathering_done(self) -> bool:
        return self._gathered.done()

    async def gathered(self, timeout: float | None = None) -> None:
        """Wait until every candidate is known (end-of-candidates)."""
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._gathered)

    @property
    def local_mapping(self) -> Mapping:
        """How our NAT maps, as gathering found it (final once gathering is done)."""
        return self._gatherer.mapping

    @property
    def birthday(self) -> BirthdayReport | None:
        """What the birthday technique did, or None when it did not run."""
        return None if self._birthday is None else self._birthday.report()

    def local_description(self) -> str:
        """Credentials, options, candidates so far, and end-of-candidates once
        gathering is over, as RFC 8839 attribute lines (with our NAT's mapping
        then, when the birthday technique is on)."""
        known = self.config.birthday.enabled and self.gathering_done
        return IceDescription(
            credentials=self._agent.local_credentials,
            options=self._agent.config.ice_options,
            candidates=tuple(self._agent.local_candidates),
            end_of_candidates=self.gathering_done,
            mapping=self._gatherer.mapping if known else None,
        ).to_text()

    def set_remote_description(self, text: str) -> None:
        """The peer's description (whole, or only more trickled candidates).

        New credentials mean the peer restarted ICE; after that the caller
        sends our `local_description()` back, with our new credentials.
        `BadDescription` when it cannot be used.
        """
        description = parse_description(text)
        if description.credentials is not None:
            creds = self._remote_credentials = description.credentials
            self._agent.set_remote_credentials(creds.ufrag, creds.pwd, options=description.options)
        if description.mapping is not None:
            self._remote_mapping = description.mapping
        for candidate in description.candidates:
            self.add_remote_candidate(candidate)
        if description.end_of_candidates:
            self.end_of_remote_candidates()
        self._consider_birthday()
        self._service()

    def add_remote_candidate(self, candidate: Candidate) -> None:
        """One trickled candidate of the peer (one after its end-of-candidates, as in
        a description applied twice, is ignored)."""
        try:
            self._agent.add_remote_candidate(candidate)
        except IceUsageError as error:
            self._log.debug("remote candidate ignored: %s", error)
            return
        if candidate.is_resolved:
            self._learn_peer(candidate.address)
        self._service()

    def _learn_peer(self, address: TransportAddress) -> None:
        """A peer address ICE may use: its data reaches the listener, and every
        relay lets it in."""
        self._peer_addresses.add(address)
        for relay in self._relayed.values():
            relay.permit(address.ip)

    def end_of_remote_candidates(self) -> None:
        """The peer will trickle no more (idempotent)."""
        try:
            self._agent.end_of_remote_candidates()
        except PeerlineError as error:
            self._log.debug("end of remote candidates: %s", error)
        self._service()

    def restart(self) -> str:
        """Start an ICE restart (RFC 8445 §9) and return the description to send;
        the current path keeps carrying data until the new checks nominate a pair."""
        self._agent.restart()
        if self.gathering_done:
            self._agent.end_of_local_candidates()
        self._service()
        return self.local_description()

    # -- the birthday technique -----------------------------------------------------------

    def _consider_birthday(self) -> None:
        """Start the technique once both sides' facts are known, if they call for it."""
        if not self.config.birthday.enabled or self._birthday_planned or not self.gathering_done:
            return
        if self._remote_credentials is None or self._closed:
            return
        plan = plan_birthday(
            negotiated=BIRTHDAY_OPTION in self._agent.negotiated_options,
            local=self._gatherer.mapping,
            remote=self._remote_mapping,
            local_candidates=self._agent.local_candidates,
            remote_candidates=self._agent.remote_candidates,
        )
        if plan is None:
            return
        self._birthday_planned = True
        self._begin_birthday(plan)

    def _begin_birthday(self, plan: BirthdayPlan) -> None:
        self._log.info("birthday technique: %s toward %s", plan.role.value, plan.peer_ip)
        if plan.role is BirthdayRole.OPENER:
            self._spawn(self._open_extra_sockets(plan))
        else:
            self._start_birthday(plan)

    async def _open_extra_sockets(self, plan: BirthdayPlan) -> None:
        """The opener's extra sockets, on the address behind our reflexive one."""
        for _ in range(self.config.birthday.ports):
            try:
                _, host = await self._loop.create_datagram_endpoint(
                    lambda: _HostSocket(self), local_addr=(plan.base.ip, 0), family=socket.AF_INET
                )
            except OSError as error:
                self._log.warning(
                    "birthday: %d extra sockets, then %s", len(self._extra_sockets), error
                )
                break
            self._extra_sockets[host.base] = host
        self._start_birthday(plan)
        self._service()

    def _start_birthday(self, plan: BirthdayPlan) -> None:
        remote = self._remote_credentials
        if self._closed or remote is None:
            return
        self._birthday = BirthdayRun(
            self._agent,
            plan,
            self.config.birthday,
            remote=remote,
            bases=list(self._extra_sockets),
            now=self._loop.time(),
            previous=self._birthday,
        )

    def _birthday_ended(self, run: BirthdayRun) -> None:
        """Close the extra sockets it does not keep; say how it went; if the peer has
        not checked us yet, it is late: run once more when it does."""
        for base in [b for b in self._extra_sockets if b not in run.keep]:
            transport = self._extra_sockets.pop(base).transport
            if transport is not None:
                transport.close()
        self._log.info("birthday technique: %s", run.report().as_dict())
        late = self._agent.peer_checked_at is None
        if run.outcome is BirthdayOutcome.GAVE_UP and late and run.attempt == 1:
            self._birthday_retry = run.plan

    # -- connection ---------------------------------------------------------------------

    async def connected(self, timeout: float | None = None) -> PathInfo:
        """The first selected pair, once ICE has one; `IceFailed` if ICE fails,
        `TimeoutError` after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._connected)

    def send(self, data: bytes) -> None:
        """`DatagramPath.send`: over the selected pair, or dropped when there is none."""
        route = self._route
        if route is not None:
            route[0](data, route[1])

    def describe(self) -> PathInfo | None:
        """`DatagramPath.describe`: the selected pair now."""
        return self._path

    def refresh_bindings(self) -> None:
        """Keep the NAT bindings behind our server-reflexive candidates alive while
        nothing else flows (a person is pasting the answer back: a NAT forgets an
        idle UDP binding after 30 s): a Binding indication, which asks for no
        answer, from every host socket to every STUN server, and from each relay's
        socket to its TURN server."""
        if self._closed:
            return
        data = keepalive_indication()
        for server in self._gatherer.server_addresses:
            for host in self._sockets.values():
                if (":" in host.base.ip) == (":" in server.ip):
                    host.sendto(data, server)
        for relay in self._relays:
            if relay.base is None:
                continue  # over TCP or TLS: the connection keeps its own binding
            relay_host = self._sockets.get(TransportAddress(*relay.base))
            if relay_host is not None:
                relay_host.sendto(data, relay.server_address)

    # -- datagrams in -------------------------------------------------------------------

    def _on_host_datagram(self, host: _HostSocket, data: bytes, source: Address) -> None:
        base = host.base
        now = self._loop.time()
        if self._gatherer.receive(data, base, now):
            self._service()
            return
        for relay in self._relays:
            if relay.base == base and relay.server_address == source:
                relay.feed(data)
                return
        run = self._birthday
        if run is not None and run.receive(data, base, TransportAddress(*source), now):
            self._service()
            return
        self._deliver(data, base, source, now)

    def _on_relayed(self, relay: RelayLink, data: bytes, peer: Address) -> None:
        relayed = relay.relayed
        if relayed is not None:
            self._deliver(data, relayed, peer, self._loop.time())

    def _deliver(self, data: bytes, base: Address, source: Address, now: float) -> None:
        if self._closed:
            return  # only the allocations' goodbyes still matter, and they went to them
        if self._agent.receive_datagram(data, base, source, now) is Disposition.CONSUMED:
            self._service()
            return
        if is_stun(data) or TransportAddress(*source) not in self._peer_addresses:
            return  # stray STUN, or a stranger: not for the session
        listener = self.listener
        if listener is not None:
            listener.datagram_received(data)

    def _on_relay_lost(self, relay: RelayLink, reason: str) -> None:
        self._log.warning("relay %s lost: %s", relay.server, reason)
        self.server_failures.append(f"{relay.server}: {reason}")

    # -- datagrams out, events, the timer -----------------------------------------------

    def _host_at(self, base: TransportAddress) -> _HostSocket | None:
        return self._sockets.get(base) or self._extra_sockets.get(base)

    def _transmit(self, out: Transmit) -> None:
        host = self._host_at(out.base)
        if host is not None:
            host.sendto(out.data, out.destination)
            return
        relay = self._relayed.get(out.base)
        if relay is not None:
            relay.send(out.data, out.destination)

    def _service(self) -> None:
        """Send what is due, act on events, and re-arm the timer if it moved."""
        if self._closed:
            return
        now = self._loop.time()
        for out in self._gatherer.datagrams_to_send(now):
            self._transmit(out)
        self._gathering_events()
        for out in self._agent.datagrams_to_send(now):
            self._transmit(out)
        self._agent_events()
        run = self._birthday
        if run is not None:
            for out in run.datagrams_to_send(now):
                self._transmit(out)
            if run.finished and self._birthday_ended_run is not run:
                self._birthday_ended_run = run
                self._birthday_ended(run)
        retry = self._birthday_retry
        if retry is not None and self._agent.peer_checked_at is not None:
            self._birthday_retry = None
            self._begin_birthday(retry)
            run = self._birthday
        birthday_timer = None if run is None else run.get_timer()
        timers = (self._agent.get_timer(), self._gatherer.get_timer(), birthday_timer)
        deadline = min((t for t in timers if t is not None), default=None)
        if deadline is not None and deadline <= self._last_fired:
            deadline = now + _IDLE_GUARD  # handled at that time and not moved: do not spin
        self._timer.set(deadline)

    def _fire(self, now: float) -> None:
        self._last_fired = now
        self._agent.handle_timer(now)
        self._gatherer.handle_timer(now)
        if self._birthday is not None:
            self._birthday.handle_timer(now)
        self._service()

    def _gathering_events(self) -> None:
        while (event := self._gatherer.next_event()) is not None:
            match event:
                case CandidateGathered(candidate=candidate, base=base):
                    self._agent.add_local_candidate(candidate, base=base)
                    self._log.debug("gathered %s", candidate.to_sdp())
                    if self._on_candidate is not None:
                        self._on_candidate(candidate)
                case ServerFailed(server=server, reason=reason):
                    self._log.info("%s gave nothing: %s", server, reason)
                    self.server_failures.append(f"{server}: {reason}")
        if self._gatherer.done and self._relays_pending == 0 and not self._gathered.done():
            self._agent.end_of_local_candidates()
            self._gathered.set_result(None)
            if self._on_candidate is not None:
                self._on_candidate(None)
            self._consider_birthday()

    def _agent_events(self) -> None:
        while (event := self._agent.next_event()) is not None:
            match event:
                case SelectedPairChanged(pair=pair):
                    self._select(pair)
                case ConsentLost(pair=pair):
                    if self._agent.selected_pair(pair.component) is None:
                        self._route = None
                        self._path = None
                    self._lost(f"consent lost on {path_info(pair)}")
                case Failed(reason=reason):
                    if self._path is None:
                        self._lost(f"ICE failed: {reason}")
                        if not self._connected.done():
                            self._connected.set_exception(IceFailed(f"ICE failed: {reason}"))
                case NewPeerReflexiveCandidate(candidate=candidate, local=False):
                    self._learn_peer(candidate.address)
                case IceRestarted(generation=generation, by_peer=by_peer):
                    self._log.info(
                        "ICE restart %d (by %s)", generation, "peer" if by_peer else "us"
                    )
                    if by_peer and self.gathering_done:
                        self._agent.end_of_local_candidates()
                case RoleChanged(role=role):
                    self._log.info("role conflict: now %s", role.value)
                case _:
                    pass

    def _select(self, pair: PairInfo) -> None:
        info = path_info(pair)
        destination = (pair.destination.ip, pair.destination.port)
        host = self._host_at(pair.base)
        if host is not None:
            self._route = (host.sendto, destination)
        else:
            relay = self._relayed.get(pair.base)
            if relay is None:
                return
            relay.bind_channel(destination)
            self._route = (relay.send, destination)
        self._path = info
        self._log.info("selected %s", info)
        if not self._connected.done():
            self._connected.set_result(info)
        if self.listener is not None:
            self.listener.path_changed(info)

    def _lost(self, reason: str) -> None:
        self._log.warning("%s", reason)
        if self.listener is not None:
            self.listener.path_lost(reason)
