"""Candidate gathering (RFC 8445 §5.1.1), sans I/O: what to gather, and from where.

The asyncio adapter (`peerline.ice.aio`) opens one UDP socket per host address
and hands each socket's address to a `Gatherer`. The gatherer answers with the
host candidate at once and with STUN Binding requests to send from that socket,
one per configured STUN server of the same family; each answer becomes a
server-reflexive candidate, as soon as it arrives (RFC 8838 trickle). TURN
allocations are run by the adapter (they outlive gathering), and their results
come back here through `add_relayed`, so that every candidate, whatever found
it, is deduplicated and prioritised in one place.

Every query has a deadline (`stun_timeout`), so a dead STUN server costs one
timeout and nothing else: gathering ends when the last query has answered or
expired.

On the way it learns how the NAT maps (`Gatherer.mapping`, for the birthday
technique of `peerline.ice.birthday`): the same socket's mapped address as seen
by two destinations, which are the two STUN servers, a STUN and a TURN server,
or, when a server names its RFC 5780 OTHER-ADDRESS, that other address, asked
once more from the same socket (a behaviour query: it counts for the verdict,
never becomes a candidate, and its failure is not a server failure).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import unquote

from peerline.errors import UsageError
from peerline.ice.agent import Transmit
from peerline.ice.birthday import BirthdayConfig, Mapping, combine_mappings, judge_mapping
from peerline.ice.candidate import MAX_LOCAL_PREFERENCE, Candidate, CandidateType
from peerline.ice.config import IceConfig
from peerline.net import InterfaceAddress, format_address, parse_port
from peerline.stun import (
    AddressFamily,
    ClientTransaction,
    MalformedMessage,
    MessageBuilder,
    MessageClass,
    Method,
    ResponseReceived,
    TransactionConfig,
    Transport,
    TransportAddress,
    is_stun,
    parse,
)

STUN_PORT = 3478
STUNS_PORT = 5349
"""RFC 7064 §3.2 / RFC 7065 §3.2 default ports for stun:/turn: and stuns:/turns:."""


class CandidatePolicy(Enum):
    """Which candidates are signalled and checked (WebRTC's iceTransportPolicy)."""

    ALL = "all"
    RELAY = "relay"
    """Only relayed candidates: the peer never learns our addresses."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StunServer:
    """A STUN server for server-reflexive candidates (RFC 7064 `stun:host:port`)."""

    host: str
    port: int = STUN_PORT

    def __post_init__(self) -> None:
        _check_host(self.host)
        if not 1 <= self.port <= 65535:
            raise UsageError(f"STUN server port out of range 1-65535: {self.port}")

    def __str__(self) -> str:
        return f"stun:{format_address((self.host, self.port))}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnServer:
    """A TURN server for relayed candidates (RFC 7065), with long-term credentials.

    `transport` is how we reach the server (UDP, TCP, or TLS for `turns:`); the
    relayed address is UDP whatever it is. `family` is the relayed address
    family to ask for (RFC 6156). `verify_tls` off accepts any certificate
    (a test server's self-signed one); `server_name` is the name TLS checks,
    the host by default.
    """

    host: str
    port: int = STUN_PORT
    username: str
    password: str
    transport: Transport = Transport.UDP
    family: int = 4
    verify_tls: bool = True
    server_name: str | None = None

    def __post_init__(self) -> None:
        _check_host(self.host)
        if not 1 <= self.port <= 65535:
            raise UsageError(f"TURN server port out of range 1-65535: {self.port}")
        if not self.username or not self.password:
            raise UsageError(f"TURN server {self.host} needs a username and a password")
        if self.family not in (4, 6):
            raise UsageError("TURN relayed address family must be 4 or 6")

    def __str__(self) -> str:
        scheme = "turns" if self.transport is Transport.TLS else "turn"
        query = "?transport=tcp" if self.transport is Transport.TCP else ""
        return f"{scheme}:{format_address((self.host, self.port))}{query}"


def _check_host(host: str) -> None:
    if not host or any(c in host for c in " /?#@[]") or host.count(":") == 1:
        raise UsageError(f"bad server host {host!r}")


def _split_authority(text: str, default_port: int, uri: str) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UsageError(f"bad server address in {uri!r}: expected [IPv6]:PORT")
        port = rest[1:]
    elif text.count(":") > 1:
        raise UsageError(f"an IPv6 server address needs brackets in {uri!r}")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise UsageError(f"no server host in {uri!r}")
    return host, parse_port(port) if port else default_port


def parse_stun_uri(uri: str) -> StunServer:
    """`stun:HOST[:PORT]` (RFC 7064); the scheme may be left out."""
    text = uri.strip()
    if text.lower().startswith("stuns:"):
        raise UsageError(f"stuns: is not supported for gathering, use stun: ({uri!r})")
    text = text[5:] if text.lower().startswith("stun:") else text
    host, port = _split_authority(text, STUN_PORT, uri)
    return StunServer(host=host, port=port)


def parse_turn_uri(
    uri: str, username: str | None = None, password: str | None = None
) -> TurnServer:
    """`turn:[USER:PASS@]HOST[:PORT][?transport=udp|tcp]` or `turns:...` (RFC 7065).

    Credentials given as arguments win over ones written in the URI (where
    tools like coturn's put them, percent-encoded).
    """
    text = uri.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("turn", "turns"):
        raise UsageError(f"a TURN server is turn:HOST[:PORT] or turns:HOST[:PORT], not {uri!r}")
    rest, _, query = rest.partition("?")
    transport = Transport.TLS if scheme == "turns" else Transport.UDP
    if query:
        name, _, value = query.partition("=")
        if name.lower() != "transport" or value.lower() not in ("udp", "tcp"):
            raise UsageError(f"the only TURN URI option is transport=udp|tcp, in {uri!r}")
        if value.lower() == "udp" and transport is Transport.TLS:
            raise UsageError(f"turns: runs over TCP, not UDP, in {uri!r}")
        if value.lower() == "tcp" and transport is Transport.UDP:
            transport = Transport.TCP
    userinfo, at, authority = rest.rpartition("@")
    if not at:
        authority = rest
    user, _, secret = userinfo.partition(":")
    default = STUNS_PORT if transport is Transport.TLS else STUN_PORT
    host, port = _split_authority(authority, default, uri)
    return TurnServer(
        host=host,
        port=port,
        username=username if username is not None else unquote(user),
        password=password if password is not None else unquote(secret),
        transport=transport,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class IceTransportConfig:
    """Everything an `IceTransport` needs to gather and connect, validated once.

    - `stun_servers`, `turn_servers`: where srflx and relayed candidates come from.
    - `include_loopback`, `include_link_local`: host addresses normally left out
      (loopback reaches only this machine; link-local IPv4 rarely routes).
      IPv6 link-local addresses need a zone SDP cannot carry, so they are
      never used.
    - `interfaces`: interface names to use (empty: every interface).
    - `addresses`: exact IPs to bind instead of looking at the interfaces (a
      test on loopback gives 127.0.0.1).
    - `ipv6`: gather on IPv6 addresses too.
    - `port_range`: (first, last) ports to bind host sockets in; None: ephemeral.
    - `policy`: `RELAY` signals and checks relayed candidates only.
    - `stun_timeout`, `turn_timeout`: how long one server may take to answer
      before it is given up (seconds); the connection goes on without it.
    - `ice`: the agent's own timers (consent, pacing...).
    - `birthday`: the birthday technique between two peerline peers (on by
      default; `BirthdayConfig(enabled=False)` neither advertises nor runs it).
    """

    stun_servers: tuple[StunServer, ...] = ()
    turn_servers: tuple[TurnServer, ...] = ()
    include_loopback: bool = False
    include_link_local: bool = False
    interfaces: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ipv6: bool = True
    port_range: tuple[int, int] | None = None
    policy: CandidatePolicy = CandidatePolicy.ALL
    stun_timeout: float = 3.0
    turn_timeout: float = 5.0
    ice: IceConfig = field(default_factory=IceConfig)
    birthday: BirthdayConfig = field(default_factory=BirthdayConfig)

    def __post_init__(self) -> None:
        if not self.stun_timeout > 0 or not self.turn_timeout > 0:
            raise UsageError("stun_timeout and turn_timeout must be > 0")
        if self.port_range is not None:
            first, last = self.port_range
            if not 1 <= first <= last <= 65535:
                raise UsageError(f"bad port range {first}-{last}: need 1 <= first <= last")
        canonical = []
        for ip in self.addresses:
            try:
                canonical.append(str(ipaddress.ip_address(ip)))
            except ValueError:
                raise UsageError(f"not an IP address to bind: {ip!r}") from None
        object.__setattr__(self, "addresses", tuple(canonical))
        if self.policy is CandidatePolicy.RELAY and not self.turn_servers:
            raise UsageError("a relay-only policy needs at least one TURN server")


def select_host_addresses(
    found: Iterable[InterfaceAddress], config: IceTransportConfig
) -> list[str]:
    """The IPs to open host sockets on, best first (RFC 8421: IPv6 before IPv4).

    With `config.addresses` those exactly; otherwise every interface address
    the configuration admits, each once.
    """
    if config.addresses:
        return list(dict.fromkeys(config.addresses))
    chosen: list[str] = []
    for entry in found:
        address = ipaddress.ip_address(entry.ip)
        if config.interfaces and entry.interface not in config.interfaces:
            continue
        if address.is_loopback and not config.include_loopback:
            continue
        if address.is_link_local and (address.version == 6 or not config.include_link_local):
            continue
        if address.version == 6 and not config.ipv6:
            continue
        if address.is_multicast or address.is_unspecified or entry.ip in chosen:
            continue
        chosen.append(entry.ip)
    # Stable: keep the system's order within a family, IPv6 first, loopback last.
    return sorted(
        chosen,
        key=lambda ip: (ipaddress.ip_address(ip).is_loopback, ":" not in ip),
    )


def local_preference(position: int) -> int:
    """RFC 8445 §5.1.2.1: a distinct local preference per host address, by rank."""
    return max(MAX_LOCAL_PREFERENCE - position, 0)


# -- the gatherer -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateGathered:
    """A new candidate, ready for the agent and the peer; `base` is where it sends from."""

    candidate: Candidate
    base: TransportAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFailed:
    """A STUN (or TURN) server gave no usable answer from `base`: it cost one timeout."""

    server: str
    base: TransportAddress | None
    reason: str


GatherEvent = CandidateGathered | ServerFailed


@dataclass(slots=True, eq=False)
class _Query:
    """One Binding request to one STUN server from one host socket."""

    server: StunServer
    address: TransportAddress
    base: TransportAddress
    preference: int
    transaction: ClientTransaction
    deadline: float
    behaviour: bool = False
    """A second destination for the mapping verdict only (no candidate)."""


class Gatherer:
    """Host and server-reflexive candidates for the host sockets it is given.

    Feed it `add_host(base, now)` per socket, `add_stun_server_address` once a
    server's name is resolved, datagrams with `receive` (True: it was the
    answer to one of our queries), time with `handle_timer`; take
    `datagrams_to_send`, `get_timer` and `next_event`. `finish()` says no more
    hosts or servers will come; `done` is then true once every query ended.
    """

    def __init__(self, config: IceTransportConfig) -> None:
        self._config = config
        self._hosts: list[tuple[TransportAddress, int]] = []  # (base, local preference)
        self._servers: list[tuple[StunServer, TransportAddress]] = []
        self._queries: dict[bytes, _Query] = {}
        self._known: set[tuple[TransportAddress, TransportAddress]] = set()
        self._mapped: dict[TransportAddress, dict[TransportAddress, TransportAddress]] = {}
        """Per IPv4 base: destination -> the address it saw us at."""
        self._asked_other: set[TransportAddress] = set()
        self._events: deque[GatherEvent] = deque()
        self._finished = False
        self._relay_only = config.policy is CandidatePolicy.RELAY
        self._timers = TransactionConfig(
            rto=min(0.5, config.stun_timeout / 4), rc=7, rm=16, ti=config.stun_timeout
        )

    @property
    def hosts(self) -> list[TransportAddress]:
        return [base for base, _ in self._hosts]

    @property
    def done(self) -> bool:
        return self._finished and not self._queries

    @property
    def mapping(self) -> Mapping:
        """How the NAT in front of our IPv4 sockets maps (UNKNOWN until two
        destinations answered one socket); final once `done`."""
        return combine_mappings(judge_mapping(base, seen) for base, seen in self._mapped.items())

    @property
    def server_addresses(self) -> list[TransportAddress]:
        """Every STUN server address queried (resolved), once each."""
        return list(dict.fromkeys(address for _, address in self._servers))

    def add_host(self, base: tuple[str, int], now: float) -> None:
        """A host socket is open at `base`: its host candidate, then its STUN queries."""
        here = TransportAddress(*base)
        preference = local_preference(len(self._hosts))
        self._hosts.append((here, preference))
        self._emit(Candidate.host(here, local_preference=preference), here)
        for server, address in self._servers:
            self._query(server, address, here, preference, now)

    def add_stun_server_address(
        self, server: StunServer, address: tuple[str, int], now: float
    ) -> None:
        """`server` resolved to `address`: query it from every host of its family."""
        target = TransportAddress(*address)
        self._servers.append((server, target))
        for base, preference in self._hosts:
            self._query(server, target, base, preference, now)

    def add_relayed(
        self,
        relayed: tuple[str, int],
        mapped: tuple[str, int] | None,
        *,
        server: tuple[str, int],
        base: tuple[str, int] | None,
    ) -> None:
        """A TURN allocation succeeded: the relayed candidate, and the mapped address
        as a server-reflexive one when the allocation ran over the host socket `base`."""
        preference = self._preference_of(base)
        relay = Candidate.relayed(
            relayed, mapped=mapped or relayed, server=server, local_preference=preference
        )
        self._emit(relay, TransportAddress(*relayed))
        if mapped is not None and base is not None:
            here = TransportAddress(*base)
            self._saw(here, TransportAddress(*server), TransportAddress(*mapped))
            self._reflexive(mapped, here, server, preference)

    def server_failed(self, server: str, reason: str) -> None:
        """A server the adapter talked to (TURN) failed: report it like ours."""
        self._events.append(ServerFailed(server=server, base=None, reason=reason))

    def finish(self) -> None:
        """No more hosts or servers: `done` once the queries in flight end."""
        self._finished = True

    def receive(self, data: bytes, base: tuple[str, int], now: float) -> bool:
        """True when `data` answered one of our queries (consumed); False otherwise."""
        if len(data) < 20 or data[8:20] not in self._queries or not is_stun(data):
            return False
        try:
            message = parse(data)
        except MalformedMessage:
            return False
        query = self._queries[message.transaction_id]
        if query.base != base or not query.transaction.handle_response(message, now):
            return False
        del self._queries[message.transaction_id]
        self._answered(query, now)
        return True

    def _answered(self, query: _Query, now: float) -> None:
        result = query.transaction.result
        message = result.message if isinstance(result, ResponseReceived) else None
        mapped = other = None
        if message is not None and message.message_class is MessageClass.SUCCESS:
            try:
                mapped = message.xor_mapped_address
                other = message.other_address
            except MalformedMessage:
                pass
        if mapped is None:
            self._failed(query, "no XOR-MAPPED-ADDRESS in the answer")
            return
        self._saw(query.base, query.address, TransportAddress(*mapped))
        if query.behaviour:
            return
        self._reflexive(mapped, query.base, query.address, query.preference)
        if other is not None and self._config.birthday.enabled:
            self._ask_other(query, TransportAddress(*other), now)

    def _saw(
        self, base: TransportAddress, destination: TransportAddress, mapped: TransportAddress
    ) -> None:
        if base.family is AddressFamily.IPV4 and destination.family is AddressFamily.IPV4:
            self._mapped.setdefault(base, {})[destination] = mapped

    def _ask_other(self, query: _Query, other: TransportAddress, now: float) -> None:
        """Ask the server's OTHER-ADDRESS from the same socket once, unless another
        destination already gave this socket a verdict."""
        base = query.base
        if base in self._asked_other or other.ip == query.address.ip:
            return
        if judge_mapping(base, self._mapped.get(base, {})) is not Mapping.UNKNOWN:
            return
        self._asked_other.add(base)
        self._query(query.server, other, base, query.preference, now, behaviour=True)

    def handle_timer(self, now: float) -> None:
        for tid, query in list(self._queries.items()):
            query.transaction.handle_timer(now)
            if now >= query.deadline or query.transaction.done:
                del self._queries[tid]
                self._failed(query, f"no answer within {self._config.stun_timeout:g} s")

    def get_timer(self) -> float | None:
        times = []
        for query in self._queries.values():
            times.append(query.deadline)
            if (due := query.transaction.get_timer()) is not None:
                times.append(due)
        return min(times, default=None)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        return [
            Transmit(data, query.base, query.address)
            for query in self._queries.values()
            for data in query.transaction.datagrams_to_send(now)
        ]

    def next_event(self) -> GatherEvent | None:
        return self._events.popleft() if self._events else None

    # -- internals ----------------------------------------------------------------------

    def _query(
        self,
        server: StunServer,
        address: TransportAddress,
        base: TransportAddress,
        preference: int,
        now: float,
        *,
        behaviour: bool = False,
    ) -> None:
        if self._relay_only:
            return  # nothing reflexive is signalled: no need to ask
        if address.family != base.family or not same_scope(address.ip, base.ip):
            return  # a loopback socket cannot reach a remote server, nor the reverse
        request = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode(fingerprint=True)
        transaction = ClientTransaction(
            request, transport=Transport.UDP, now=now, config=self._timers
        )
        self._queries[transaction.transaction_id] = _Query(
            server=server,
            address=address,
            base=base,
            preference=preference,
            transaction=transaction,
            deadline=now + self._config.stun_timeout,
            behaviour=behaviour,
        )

    def _failed(self, query: _Query, reason: str) -> None:
        if query.behaviour:
            return  # the server's other address is not one we were asked to use
        self._events.append(ServerFailed(server=str(query.server), base=query.base, reason=reason))

    def _preference_of(self, base: tuple[str, int] | None) -> int:
        for here, preference in self._hosts:
            if here == base:
                return preference
        return local_preference(len(self._hosts))

    def _reflexive(
        self,
        mapped: tuple[str, int],
        base: TransportAddress,
        server: tuple[str, int],
        preference: int,
    ) -> None:
        """RFC 8445 §5.1.3: a reflexive address equal to its base (no NAT) or already
        known from another server is redundant and dropped."""
        address = TransportAddress(*mapped)
        if address == base:
            return
        candidate = Candidate.server_reflexive(
            address, base=base, server=server, local_preference=preference
        )
        self._emit(candidate, base)

    def _emit(self, candidate: Candidate, base: TransportAddress) -> None:
        if self._relay_only and candidate.type is not CandidateType.RELAYED:
            return
        key = (candidate.address, base)
        if key in self._known:
            return
        self._known.add(key)
        self._events.append(CandidateGathered(candidate=candidate, base=base))


def same_scope(a: str, b: str) -> bool:
    """Both loopback or neither: a loopback socket reaches only loopback servers."""
    return ipaddress.ip_address(a).is_loopback == ipaddress.ip_address(b).is_loopback
