"""The SIP element of a supernode — registrar and stateful proxy — with no I/O.

Bytes come in with the flow they arrived on and the time (`receive`); what to
send comes out of `take_sends()`, when to be called again out of
`get_timer()`. The adapter reports connections opening and closing, and how
busy its loop is. Order of work for a request, cheapest first: STUN keepalive,
per-source budget, parse, scanner check, retransmission match, overload gate,
then the expensive parts (digest, location, forking).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from peerline.sip.addresses import TRANSPORT_PARAM, Addresses, canonical_ip, is_ip
from peerline.sip.digest import Algorithm, DigestServer, Verdict
from peerline.sip.errors import MalformedMessage, TransactionError
from peerline.sip.fields import Via, remember_via
from peerline.sip.flow import Address, Flow
from peerline.sip.guard import Guard, GuardConfig
from peerline.sip.location import Binding, LocationStore, MemoryLocationStore
from peerline.sip.matching import TransactionKey, cancel_target_key, client_key, server_key
from peerline.sip.message import Request, Response, error_response, parse_message
from peerline.sip.methods import Method, Transport
from peerline.sip.outbound import FlowTokens, is_stun, stun_keepalive_answer
from peerline.sip.proxy import (
    DIALOG_FORMING,
    Branch,
    CancelEntry,
    Context,
    Proxy,
    Target,
    Timed,
    upstream,
)
from peerline.sip.registrar import SUPPORTED, Registrar, RegistrarConfig
from peerline.sip.transaction import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    Terminated,
    TimerConfig,
    server_transaction,
)
from peerline.sip.uri import SipUri, parse_uri
from peerline.users import UserDirectory

log = logging.getLogger(__name__)

ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, REFER, "
    "NOTIFY, SUBSCRIBE"
)
_HOUSEKEEPING = 1.0
_FLOW_SWEEP = 10.0


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes for the adapter to send over `flow` (connection 0: reuse or open one)."""

    data: bytes
    flow: Flow


@dataclass(frozen=True, slots=True)
class ElementConfig:
    """What the registrar and proxy serve, and their limits."""

    domain: str
    realm: str
    #: Keys the digest nonces and the flow tokens; 32 random bytes per start is fine
    #: for one supernode.
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    timers: TimerConfig = field(default_factory=TimerConfig)
    nonce_lifetime: float = 300.0
    digest_algorithms: tuple[Algorithm, ...] = (Algorithm.SHA_256, Algorithm.MD5)
    #: Server transactions alive at once; beyond this new requests get 503.
    max_transactions: int = 200_000
    #: An Outbound UDP flow with no keepalive for this long has failed.
    udp_flow_timeout: float = 300.0


class _Server:
    """A server transaction, the flow its request came in on, and its context."""

    __slots__ = ("context", "element", "flow", "key", "scheduled", "txn")

    def __init__(
        self,
        element: SipElement,
        key: TransactionKey,
        txn: InviteServerTransaction | NonInviteServerTransaction,
        flow: Flow,
    ) -> None:
        self.element = element
        self.key = key
        self.txn = txn
        self.flow = flow
        self.context: Context | None = None
        self.scheduled: float | None = None

    def deadline(self) -> float | None:
        return self.txn.get_timer()

    def fire(self, now: float) -> None:
        self.element.server_timer(self, now)


class _Housekeeping:
    __slots__ = ("element", "next", "scheduled")

    def __init__(self, element: SipElement, now: float) -> None:
        self.element = element
        self.next = now + _HOUSEKEEPING
        self.scheduled: float | None = None

    def deadline(self) -> float | None:
        return self.next

    def fire(self, now: float) -> None:
        self.next = now + _HOUSEKEEPING
        self.element.housekeeping(now)


class SipElement:
    """Registrar + stateful proxy for one domain."""

    def __init__(
        self,
        config: ElementConfig,
        users: UserDirectory,
        listeners: Iterable[tuple[Transport, Address]],
        now: float,
        *,
        store: LocationStore | None = None,
    ) -> None:
        self.config = config
        self.domain = config.domain.lower()
        self.users = users
        self.timers = config.timers
        self.digest = DigestServer(
            config.secret,
            config.realm,
            nonce_lifetime=config.nonce_lifetime,
            algorithms=config.digest_algorithms,
        )
        self.tokens = FlowTokens(config.secret)
        self.store: LocationStore = store if store is not None else MemoryLocationStore()
        self.registrar = Registrar(self.store, config.registrar)
        self.guard = Guard(config.guard, now)
        self.proxy = Proxy(self)
        self.counters: Counter[str] = Counter()
        self.addresses = Addresses(config.domain)
        for transport, address in listeners:
            self.add_listener(transport, address)
        self._servers: dict[TransactionKey, _Server] = {}
        self._contexts: dict[TransactionKey, Context] = {}
        self._clients: dict[TransactionKey, Branch | CancelEntry] = {}
        self._replies: dict[TransactionKey, tuple[bytes, Flow]] = {}
        self._reply_expiry: deque[tuple[float, TransactionKey]] = deque()
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = 0
        self._sends: list[Send] = []
        self._connections: set[int] = set()
        self._flow_seen: dict[Flow, float] = {}
        self._next_sweep = now + _FLOW_SWEEP
        self.schedule(_Housekeeping(self, now))

    # -- adapter interface ---------------------------------------------------
    def add_listener(self, transport: Transport, address: Address) -> None:
        self.addresses.add_listener(transport, address)

    def connection_opened(self, flow: Flow) -> None:
        self._connections.add(flow.connection)

    def flow_closed(self, flow: Flow, now: float) -> None:
        """A connection closed or failed: its Outbound bindings go (RFC 5626 §6)."""
        self._connections.discard(flow.connection)
        for binding in self.store.remove_flow(flow):
            self.counters["bindings_flow_failed"] += 1
            log.debug("flow %s failed: binding %s removed", flow.describe(), binding.aor)

    def send_failed(self, flow: Flow, now: float) -> None:
        """The adapter could not send on `flow`: branches waiting on it fail now."""
        for entry in list(self._clients.values()):
            if isinstance(entry, Branch) and entry.target.flow == flow:
                self.proxy.transport_failed(entry, now)

    def take_sends(self) -> list[Send]:
        sends, self._sends = self._sends, []
        return sends

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].scheduled != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, item = heapq.heappop(heap)
            if item.scheduled != deadline:
                continue
            item.scheduled = None
            item.fire(now)
            self.schedule(item)

    @property
    def transactions(self) -> int:
        return len(self._servers) + len(self._clients)

    # -- ProxyHost -----------------------------------------------------------
    def send(self, data: bytes, flow: Flow) -> None:
        self._sends.append(Send(data, flow))

    def schedule(self, item: Timed) -> None:
        """Put `item` on the heap at its deadline. Entries it had are left in place
        and skipped when they come up (their deadline is no longer the item's), and
        the heap is rebuilt when they pile up (`housekeeping`), so that what is over
        is not kept alive until some old deadline (Timer C is three minutes away)."""
        deadline = item.deadline()
        if deadline is None:
            item.scheduled = None  # over: every entry it has is stale now
            return
        if deadline == item.scheduled:
            return
        item.scheduled = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, item))

    def via(self, flow: Flow, branch: str) -> Via:
        return self.addresses.via(flow, branch)

    def record_route(self, flow: Flow) -> str:
        return self.addresses.record_route(flow, self.tokens.encode(flow))

    def alive(self, flow: Flow) -> bool:
        return not flow.is_stream or flow.connection == 0 or flow.connection in self._connections

    def respond(self, context: Context, response: Response, now: float) -> None:
        entry = self._servers.get(context.key)
        if entry is None or entry.context is not context:
            return
        try:
            entry.txn.send_response(response, now)
        except TransactionError:
            return
        self._pump_server(entry, now)

    def add_client(self, key: TransactionKey, entry: Branch | CancelEntry) -> None:
        self._clients[key] = entry

    def remove_client(self, key: TransactionKey) -> None:
        self._clients.pop(key, None)

    # -- receiving -----------------------------------------------------------
    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        """One datagram, or one message cut from a stream by `StreamFramer`."""
        counters = self.counters
        if flow.transport is Transport.UDP and is_stun(data):
            answer = stun_keepalive_answer(data, flow.remote)
            if answer is not None:
                counters["stun_keepalives"] += 1
                self.touch(flow, now)
                self.send(answer, flow)
            return
        if not self.guard.allow(flow.remote[0], now):
            counters["dropped_rate_limited"] += 1
            return
        try:
            message = parse_message(data)
        except MalformedMessage as error:
            counters["malformed"] += 1
            refusal = error_response(error)
            if refusal is not None:
                self._send_response(refusal, flow)
            return
        if flow in self._flow_seen:
            self._flow_seen[flow] = now
        try:
            if isinstance(message, Response):
                self._on_response(message, flow, now)
            else:
                self._on_request(message, flow, now)
        except MalformedMessage as error:  # a header read lazily turned out bad
            counters["malformed"] += 1
            log.debug("malformed message from %s: %s", flow.describe(), error.reason)

    def touch(self, flow: Flow, now: float) -> None:
        """Traffic on a flow (a keepalive, any message): it is alive."""
        if flow in self._flow_seen:
            self._flow_seen[flow] = now

    def _on_request(self, request: Request, flow: Flow, now: float) -> None:
        counters = self.counters
        via = request.top_via
        stamped = via.stamped(flow.remote[0], flow.remote[1])
        if stamped.params is not via.params:
            text = str(stamped)
            remember_via(text, stamped)
            headers = request.headers.with_first_value("Via", text)
            vias = (stamped, *request.vias[1:])
            request = request.with_headers(headers, "Via", parsed={"Via": vias})
        if self.guard.is_scanner(request.headers.get("User-Agent")):
            counters["dropped_scanner"] += 1
            return
        method = request.method
        key = server_key(request)
        if method == Method.ACK:
            entry = self._servers.get(key)
            if entry is not None:
                self._server_input(entry, request, now)
            else:
                self._forward_ack(request, flow, now)
            return
        entry = self._servers.get(key)
        if entry is not None:
            counters["retransmissions"] += 1
            self._server_input(entry, request, now)
            return
        cached = self._replies.get(key)
        if cached is not None:
            counters["retransmissions"] += 1
            self.send(*cached)
            return
        counters["requests"] += 1
        if method == Method.CANCEL:
            context = self._contexts.get(cancel_target_key(request))
            status = 481 if context is None else 200
            self._reply(request, key, flow, Response.for_request(request, status), now)
            if context is not None:
                self.proxy.cancel(context, now)
            return
        in_dialog = request.to.tag is not None
        if not in_dialog and (
            len(self._servers) >= self.config.max_transactions
            or not self.guard.admit(answers_challenge=_has_credentials(request))
        ):
            counters["overload_503"] += 1
            retry = str(self.guard.retry_after())
            answer = Response.for_request(
                request, 503, to_tag=_tag(), extra=(("Retry-After", retry),)
            )
            self._reply(request, key, flow, answer, now, transaction=False)
            return
        self._new_request(request, key, flow, now)

    def _new_request(self, request: Request, key: TransactionKey, flow: Flow, now: float) -> None:
        method = request.method
        max_forwards = request.max_forwards
        unsupported = [
            t for t in request.option_tags("Proxy-Require") if t.lower() not in SUPPORTED
        ]
        if method == Method.REGISTER and self.addresses.is_us(request.uri):
            unsupported += [t for t in request.option_tags("Require") if t.lower() not in SUPPORTED]
        if unsupported:
            answer = Response.for_request(
                request, 420, to_tag=_tag(), extra=(("Unsupported", ", ".join(unsupported)),)
            )
            self._reply(request, key, flow, answer, now)
            return
        if method == Method.OPTIONS and (
            max_forwards == 0 or self.addresses.is_server_uri(request.uri)
        ):
            self._reply(request, key, flow, self._options_answer(request), now)
            return
        if max_forwards == 0:
            self._reply(request, key, flow, Response.for_request(request, 483, to_tag=_tag()), now)
            return
        if method == Method.REGISTER and self.addresses.is_us(request.uri):
            self._reply(request, key, flow, self._register(request, flow, now), now)
            return
        loop_tag = self._loop_tag(request)
        if self._looped(request, loop_tag):
            self._reply(request, key, flow, Response.for_request(request, 482, to_tag=_tag()), now)
            return
        decision = self._route(request, flow, now)
        if isinstance(decision, Response):
            self._reply(request, key, flow, decision, now)
            return
        routed, groups, record_route = decision
        txn = server_transaction(request, reliable=flow.reliable, now=now, config=self.timers)
        entry = _Server(self, key, txn, flow)
        context = Context(
            key, txn, routed, flow, groups, record_route=record_route, loop_tag=loop_tag
        )
        entry.context = context
        self._servers[key] = entry
        self._contexts[key] = context
        self._pump_server(entry, now)
        self.counters["proxied"] += 1
        self.proxy.start(context, now)

    # -- answering -----------------------------------------------------------
    def _reply(
        self,
        request: Request,
        key: TransactionKey,
        flow: Flow,
        response: Response,
        now: float,
        *,
        transaction: bool = True,
    ) -> None:
        """Answer a request ourselves: INVITE through a server transaction (its final
        response is retransmitted until ACKed), others through the reply cache."""
        self.counters[f"answered_{response.status}"] += 1
        if request.method == Method.INVITE and transaction:
            txn = InviteServerTransaction(
                request, reliable=flow.reliable, now=now, config=self.timers, send_trying=False
            )
            entry = _Server(self, key, txn, flow)
            self._servers[key] = entry
            txn.send_response(response, now)
            self._pump_server(entry, now)
            return
        data = response.to_bytes()
        out = self._response_flow(response, flow)
        self.send(data, out)
        if not flow.reliable and transaction:
            self._replies[key] = (data, out)
            self._reply_expiry.append((now + 64 * self.timers.t1, key))

    def _send_response(self, response: Response, flow: Flow) -> None:
        with contextlib.suppress(MalformedMessage):
            self.send(response.to_bytes(), self._response_flow(response, flow))

    def _response_flow(self, response: Response, flow: Flow) -> Flow:
        """Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4): back over the
        connection on streams; to received:rport (or the Via port) on UDP."""
        if flow.is_stream:
            return flow
        via = response.top_via
        host = via.received or via.host
        host = canonical_ip(host[1:-1] if host.startswith("[") else host)
        if not is_ip(host):
            host = flow.remote[0]  # a name in sent-by, and no received: answer the source
        port = via.rport or (flow.remote[1] if via.rport_requested else via.port or 5060)
        if (host, port) == flow.remote:
            return flow
        return Flow(flow.transport, flow.local, (host, port))

    def _options_answer(self, request: Request) -> Response:
        return Response.for_request(
            request,
            200,
            to_tag=_tag(),
            extra=(
                ("Allow", ALLOW),
                ("Accept", "application/sdp, text/plain"),
                ("Supported", ", ".join(SUPPORTED)),
            ),
        )

    def _pump_server(self, entry: _Server, now: float) -> None:
        txn = entry.txn
        for message in txn.messages_to_send():
            if isinstance(message, Response):
                self._send_response(message, entry.flow)
        while (event := txn.next_event()) is not None:
            if isinstance(event, Terminated):
                if self._servers.get(entry.key) is entry:
                    del self._servers[entry.key]
                context = entry.context
                if context is not None:
                    if self._contexts.get(entry.key) is context:
                        del self._contexts[entry.key]
                    # Nothing can reach the caller any more. Branches still running
                    # keep their context; the context lets go of them, so neither
                    # waits for the cyclic collector to be freed.
                    context.branches.clear()
        self.schedule(entry)

    def _server_input(self, entry: _Server, request: Request, now: float) -> None:
        try:
            entry.txn.receive_request(request, now)
        except TransactionError:
            return
        self._pump_server(entry, now)

    def server_timer(self, entry: _Server, now: float) -> None:
        try:
            entry.txn.handle_timer(now)
        except TransactionError:
            return
        self._pump_server(entry, now)

    # -- responses from downstream -------------------------------------------
    def _on_response(self, response: Response, flow: Flow, now: float) -> None:
        entry = self._clients.get(client_key(response))
        if isinstance(entry, Branch):
            self.proxy.branch_response(entry, response, now)
            return
        if isinstance(entry, CancelEntry):
            self.proxy.cancel_response(entry, response, now)
            return
        # No transaction (a late 2xx retransmission): forward statelessly (§16.11).
        vias = response.vias
        if len(vias) < 2 or not self.addresses.is_our_via(vias[0]):
            self.counters["dropped_stray_response"] += 1
            return
        following = vias[1]
        transport = TRANSPORT_PARAM.get(following.transport.lower())
        if transport is None:
            return
        host = following.received or following.host
        host = host[1:-1] if host.startswith("[") else host
        port = following.rport or following.port or 5060
        local = self.addresses.local_for(transport, host)
        if local is None:
            return
        self.send(upstream(response).to_bytes(), Flow(transport, local, (host, port)))

    # -- registrar -----------------------------------------------------------
    def _register(self, request: Request, flow: Flow, now: float) -> Response:
        to = request.to
        uri = to.uri
        if not isinstance(uri, SipUri) or not uri.user or not self.addresses.is_our_domain(uri):
            return Response.for_request(request, 403, "Not a user of this domain", to_tag=_tag())
        user = uri.user_unescaped or ""
        identity = self._authenticate(request, flow, now, proxy=False)
        if isinstance(identity, Response):
            return identity
        if identity != user:
            return Response.for_request(
                request, 403, "Credentials are for another user", to_tag=_tag()
            )
        aor = f"{user}@{self.domain}"
        response = self.registrar.register(request, aor, flow, now, to_tag=_tag())
        if response.status == 200:
            self.counters["registrations"] += 1
            if flow.transport is Transport.UDP and self.store.has_flow(flow):
                self._flow_seen[flow] = now
        return response

    def _authenticate(
        self, request: Request, flow: Flow, now: float, *, proxy: bool
    ) -> str | Response:
        """The authenticated user name, or the response to send (401/407, or 403 to a
        locked-out source). Unknown users and wrong passwords look the same."""
        ip = flow.remote[0]
        guard = self.guard
        if guard.locked_out(ip, now):
            self.counters["auth_locked_out"] += 1
            return Response.for_request(request, 403, to_tag=_tag())
        try:
            credentials = self.digest.credentials_in(request, proxy=proxy)
        except MalformedMessage:
            credentials = None
        stale = False
        if credentials is not None:
            user = self.users.get(credentials.username)
            password = ha1 = None
            if user is not None:
                password = user.password
                if password is None and credentials.algorithm is Algorithm.MD5:
                    ha1 = user.ha1_md5(self.digest.realm)
            verdict = self.digest.verify(
                credentials, method=request.method, now=now, password=password, ha1=ha1
            )
            if verdict is Verdict.OK:
                guard.auth_succeeded(ip)
                return credentials.username
            if verdict is Verdict.STALE:
                stale = True
            else:
                self.counters["auth_failed"] += 1
                guard.auth_failed(ip, now)
        status = 407 if proxy else 401
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = tuple(
            (name, c.to_header_value()) for c in self.digest.challenges(now, stale=stale)
        )
        return Response.for_request(request, status, to_tag=_tag(), extra=challenges)

    # -- routing -------------------------------------------------------------
    def _route(
        self, request: Request, flow: Flow, now: float
    ) -> Response | tuple[Request, list[list[Target]], bool]:
        """Where a request goes (§16.4, §16.5), or the error that answers it."""
        headers = request.headers
        routes = list(request.routes)
        tokens: list[Flow] = []
        popped = False
        while routes and self.addresses.is_us(routes[0].uri):
            route_uri = routes.pop(0).uri
            if isinstance(route_uri, SipUri) and route_uri.user:
                decoded = self.tokens.decode(route_uri.user)
                if decoded is not None:
                    tokens.append(decoded)
            headers = headers.without_first_value("Route")
            popped = True
        if popped:
            request = request.with_headers(headers, "Route", parsed={"Route": tuple(routes)})
        method = request.method
        if tokens:
            out = next((f for f in tokens if not _same_flow(f, flow)), tokens[0])
            if not self.alive(out):
                return Response.for_request(request, 430, to_tag=_tag())
            return request, [[Target(None, out)]], False
        if request.to.tag is not None:
            return Response.for_request(request, 481, to_tag=_tag())
        identity: str | None = None
        from_uri = request.from_.uri
        if isinstance(from_uri, SipUri) and self.addresses.is_our_domain(from_uri):
            auth = self._authenticate(request, flow, now, proxy=True)
            if isinstance(auth, Response):
                return auth
            if auth != from_uri.user_unescaped:
                return Response.for_request(
                    request, 403, "Credentials are for another user", to_tag=_tag()
                )
            identity = auth
        record_route = method in DIALOG_FORMING
        if routes:
            if identity is None:
                return Response.for_request(request, 403, "Relaying denied", to_tag=_tag())
            hop = self.addresses.flow_to(routes[0].uri)
            if hop is None:
                return Response.for_request(request, 404, "Next hop has no address", to_tag=_tag())
            return request, [[Target(None, hop)]], record_route
        uri = request.uri
        if isinstance(uri, SipUri) and self.addresses.is_our_domain(uri):
            user = uri.user_unescaped
            if not user:
                return Response.for_request(request, 404, to_tag=_tag())
            bindings = self.store.lookup(f"{user}@{self.domain}", now)
            groups: list[list[Target]] = []
            last_q: float | None = None
            for binding in bindings:
                target = self._target(binding)
                if target is None:
                    continue
                if last_q is None or binding.q != last_q:
                    groups.append([])
                    last_q = binding.q
                groups[-1].append(target)
            if not groups:
                return Response.for_request(request, 480, to_tag=_tag())
            return request, groups, record_route
        if identity is None:
            return Response.for_request(request, 403, "Relaying denied", to_tag=_tag())
        hop = self.addresses.flow_to(uri)
        if hop is None:
            return Response.for_request(request, 404, "No address for the target", to_tag=_tag())
        return request, [[Target(None, hop)]], record_route

    def _target(self, binding: Binding) -> Target | None:
        """The flow to a binding: the one it registered over (a NAT lets nothing else
        in); if that connection is gone, a new one to its contact, unless Outbound."""
        flow = binding.flow
        if not self.alive(flow):
            if binding.outbound:
                return None
            try:
                fresh = self.addresses.flow_to(parse_uri(binding.uri))
            except MalformedMessage:
                return None
            if fresh is None:
                return None
            flow = fresh
        return Target(binding.uri, flow, binding.path, binding.q)

    def _forward_ack(self, request: Request, flow: Flow, now: float) -> None:
        """An ACK for a 2xx travels end to end without a transaction (§16.11)."""
        decision = self._route(request, flow, now)
        if isinstance(decision, Response):
            self.counters["dropped_ack"] += 1
            return
        routed, groups, _ = decision
        target = groups[0][0]
        branch = (
            "z9hG4bK-pa"
            + hashlib.blake2b(
                (request.top_via.branch or str(request.top_via)).encode(), digest_size=9
            ).hexdigest()
        )
        forwarded = self.proxy.forward_request(routed, target, branch, None)
        self.send(forwarded.to_bytes(), target.flow)

    # -- loops ---------------------------------------------------------------
    @staticmethod
    def _loop_tag(request: Request) -> str:
        """RFC 3261 §16.6 step 8: a hash of what a looping request keeps unchanged."""
        text = "|".join(
            (
                str(request.uri),
                request.from_.tag or "",
                request.call_id,
                str(request.cseq.number),
                ",".join(request.headers.get_all("Proxy-Require")),
                ",".join(request.headers.get_all("Route")),
            )
        )
        return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=5).hexdigest()

    def _looped(self, request: Request, loop_tag: str) -> bool:
        """§16.3 step 4: one of our Vias carries the same hash: it came back unchanged."""
        marker = f"-pl{loop_tag}-"
        return any(
            self.addresses.is_our_via(via) and marker in (via.branch or "") for via in request.vias
        )

    # -- housekeeping --------------------------------------------------------
    def housekeeping(self, now: float) -> None:
        """Expire bindings and cached replies; drop Outbound UDP flows gone silent;
        rebuild the timer heap when stale entries outnumber live ones."""
        self.store.expire(now)
        heap = self._heap
        if len(heap) > 2 * (len(self._servers) + len(self._clients)) + 1024:
            self._heap = [entry for entry in heap if entry[2].scheduled == entry[0]]
            heapq.heapify(self._heap)
        expiry = self._reply_expiry
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            self._replies.pop(key, None)
        if now >= self._next_sweep:
            self._next_sweep = now + _FLOW_SWEEP
            limit = now - self.config.udp_flow_timeout
            for flow, seen in list(self._flow_seen.items()):
                if not self.store.has_flow(flow):
                    del self._flow_seen[flow]
                elif seen < limit:
                    del self._flow_seen[flow]
                    self.flow_closed(flow, now)


def _has_credentials(request: Request) -> bool:
    headers = request.headers
    return "Authorization" in headers or "Proxy-Authorization" in headers


def _same_flow(a: Flow, b: Flow) -> bool:
    return a.transport == b.transport and a.remote == b.remote and a.connection == b.connection


def _tag() -> str:
    return os.urandom(6).hex()
