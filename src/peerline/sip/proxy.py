"""The stateful proxy (RFC 3261 §16), with no I/O: forking, CANCEL, best response.

A `Context` is the response context of §16.7: the server transaction of the
request as received, and one `Branch` (a client transaction) per target.
Targets come in groups of equal q: a group is tried in parallel, the next
group only when every branch of the one before failed without a 6xx
(sequential forking by q, §16.6). Provisional and 2xx responses go upstream at
once; when all is over the best final response goes up (§16.7 step 6).

The element owns sockets, timers and the transaction tables; the proxy asks it
to send and to schedule through the small `ProxyHost` interface.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from peerline.sip.errors import TransactionError
from peerline.sip.fields import MAGIC_COOKIE, Via, remember_via
from peerline.sip.flow import Flow
from peerline.sip.matching import TransactionKey, client_key, new_branch
from peerline.sip.message import Request, Response, build_cancel
from peerline.sip.methods import Method
from peerline.sip.transaction import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ResponseReceived,
    Terminated,
    TimedOut,
    TimerConfig,
    TransportFailed,
    client_transaction,
)
from peerline.sip.uri import parse_uri

log = logging.getLogger(__name__)

ServerTxn = InviteServerTransaction | NonInviteServerTransaction
#: RFC 3261 §16.6 step 11: Timer C, "greater than 3 minutes".
TIMER_C = 181.0
#: Methods whose forwarded requests we record-route: they make dialogs.
DIALOG_FORMING = frozenset({Method.INVITE, Method.SUBSCRIBE, Method.REFER})


@dataclass(frozen=True, slots=True)
class Target:
    """Where one branch goes: its Request-URI, the flow to send on, and Route values
    to push (a Path, RFC 3327)."""

    uri: str | None
    flow: Flow
    routes: tuple[str, ...] = ()
    q: float = 1.0


class ProxyHost(Protocol):
    """What the proxy needs from the element that runs it."""

    timers: TimerConfig

    def send(self, data: bytes, flow: Flow) -> None: ...
    def schedule(self, item: Timed) -> None: ...
    def via(self, flow: Flow, branch: str) -> Via: ...
    def record_route(self, flow: Flow) -> str: ...
    def alive(self, flow: Flow) -> bool: ...
    def respond(self, context: Context, response: Response, now: float) -> None: ...
    def add_client(self, key: TransactionKey, entry: Branch | CancelEntry) -> None: ...
    def remove_client(self, key: TransactionKey) -> None: ...


class Timed(Protocol):
    scheduled: float | None

    def deadline(self) -> float | None: ...
    def fire(self, now: float) -> None: ...


class Context:
    """The response context of one proxied request."""

    __slots__ = (
        "branches",
        "cancelled",
        "done",
        "got_2xx",
        "groups",
        "in_flow",
        "key",
        "loop_tag",
        "record_route",
        "request",
        "server",
        "stop_forking",
    )

    def __init__(
        self,
        key: TransactionKey,
        server: ServerTxn,
        request: Request,
        in_flow: Flow,
        groups: list[list[Target]],
        *,
        record_route: bool,
        loop_tag: str = "",
    ) -> None:
        self.key = key
        self.loop_tag = loop_tag
        self.server = server
        self.request = request
        self.in_flow = in_flow
        self.groups: deque[list[Target]] = deque(groups)
        self.branches: list[Branch] = []
        self.record_route = record_route
        self.cancelled = False
        self.got_2xx = False
        self.stop_forking = False
        self.done = False

    @property
    def is_invite(self) -> bool:
        return self.request.method == Method.INVITE


class Branch:
    """One client transaction of a context, with Timer C for INVITE."""

    __slots__ = (
        "cancel_pending",
        "cancelled",
        "context",
        "final",
        "key",
        "owner",
        "provisional",
        "request",
        "scheduled",
        "target",
        "timer_c",
        "txn",
    )

    def __init__(
        self, owner: Proxy, context: Context, target: Target, request: Request, now: float
    ) -> None:
        self.owner = owner
        host = owner.host
        self.context = context
        self.target = target
        self.request = request
        self.key = client_key(request)
        self.txn = client_transaction(
            request, reliable=target.flow.reliable, now=now, config=host.timers
        )
        self.provisional = False
        self.cancel_pending = False
        self.cancelled = False
        self.final: Response | None = None
        self.scheduled: float | None = None
        self.timer_c: float | None = now + TIMER_C if context.is_invite else None

    def deadline(self) -> float | None:
        timer = self.txn.get_timer()
        if self.timer_c is not None and self.final is None:
            return self.timer_c if timer is None else min(timer, self.timer_c)
        return timer

    def fire(self, now: float) -> None:
        self.owner.branch_timer(self, now)


class CancelEntry:
    """The client transaction of a CANCEL we sent: its 200 is simply absorbed."""

    __slots__ = ("flow", "key", "owner", "scheduled", "txn")

    def __init__(self, owner: Proxy, request: Request, flow: Flow, now: float) -> None:
        self.owner = owner
        host = owner.host
        self.key = client_key(request)
        self.flow = flow
        self.txn = client_transaction(request, reliable=flow.reliable, now=now, config=host.timers)
        self.scheduled: float | None = None

    def deadline(self) -> float | None:
        return self.txn.get_timer()

    def fire(self, now: float) -> None:
        self.owner.cancel_timer(self, now)


def loop_branch(loop_tag: str) -> str:
    """A fresh branch that carries the loop-detection hash (RFC 3261 §16.6 step 8)."""
    return f"{MAGIC_COOKIE}-pl{loop_tag}-{secrets.token_urlsafe(9)}"


#: Headers a forwarded request or response carries on as they came.
_FORWARDED_UNCHANGED = frozenset({"From", "To", "CSeq", "Contact"})


def upstream(response: Response) -> Response:
    """A response as it goes up: our Via, the top one, removed (§16.7 step 3)."""
    cache = response.parsed_of(_FORWARDED_UNCHANGED)
    cache["Via"] = response.vias[1:]
    return Response(
        response.status,
        response.reason,
        response.headers.without_first_value("Via"),
        response.body,
        cache,
    )


_PREFERRED_4XX = (401, 407, 415, 420, 484)


def best_response(responses: list[Response]) -> Response:
    """§16.7 step 6: any 6xx; else the lowest class, 401/407/415/420/484 first among
    the 4xx; challenges of every 401/407 merged (step 7); 503 becomes 500."""
    six = [r for r in responses if r.status >= 600]
    if six:
        best = six[0]
    else:
        best = min(
            responses,
            key=lambda r: (r.status // 100, r.status not in _PREFERRED_4XX, r.status == 503),
        )
    if best.status in (401, 407):
        headers = best.headers
        for other in responses:
            if other is best or other.status not in (401, 407):
                continue
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                for value in other.headers.get_all(name):
                    headers = headers.with_added(name, value)
        best = Response(best.status, best.reason, headers, best.body)
    if best.status == 503:
        best = Response(500, "Server Internal Error", best.headers.without("Retry-After"))
    return best


class Proxy:
    """Forks requests, collects responses, cancels; one instance per element."""

    def __init__(self, host: ProxyHost) -> None:
        self.host = host
        self.forwarded = 0

    # -- starting ------------------------------------------------------------
    def start(self, context: Context, now: float) -> None:
        """Launch the first group of targets."""
        self._next_group(context, now)

    def _next_group(self, context: Context, now: float) -> None:
        while context.groups and not (context.cancelled or context.stop_forking):
            group = context.groups.popleft()
            started = 0
            for target in group:
                if self._launch(context, target, now):
                    started += 1
            if started:
                return
        self._finish_if_done(context, now)

    def _launch(self, context: Context, target: Target, now: float) -> bool:
        host = self.host
        branch_id = loop_branch(context.loop_tag)
        request = self.forward_request(context.request, target, branch_id, context)
        branch = Branch(self, context, target, request, now)
        context.branches.append(branch)
        host.add_client(branch.key, branch)
        self.forwarded += 1
        self._pump_branch(branch, now)
        return True

    def forward_request(
        self, request: Request, target: Target, branch_id: str, context: Context | None
    ) -> Request:
        """The copy of `request` for one target (§16.6 steps 1-8)."""
        host = self.host
        max_forwards = request.max_forwards
        first: list[tuple[str, str]] = []
        if context is not None and context.record_route:
            first.append(("Record-Route", host.record_route(context.in_flow)))
            first.append(("Record-Route", host.record_route(target.flow)))
        first.extend(("Route", f"<{route}>") for route in reversed(target.routes))
        via = host.via(target.flow, branch_id)
        via_text = str(via)
        remember_via(via_text, via)
        first.append(("Via", via_text))
        headers = request.headers.edited(
            set_to=(("Max-Forwards", str(70 if max_forwards is None else max_forwards - 1)),),
            first=first,
        )
        uri = request.uri
        if target.uri is not None:
            uri = parse_uri(target.uri)
        # What is known of the unchanged headers goes along; our Via is known too.
        cache = request.parsed_of(_FORWARDED_UNCHANGED)
        cache["Via"] = (via, *request.vias)
        return Request(request.method, uri, headers, request.body, cache)

    # -- the client side -----------------------------------------------------
    def _pump_branch(self, branch: Branch, now: float) -> None:
        host = self.host
        txn = branch.txn
        for message in txn.messages_to_send():
            host.send(message.to_bytes(), branch.target.flow)
        while (event := txn.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                self._branch_response(branch, event.response, now)
            elif isinstance(event, TimedOut):
                self._branch_final(branch, self._synthesized(branch, 408), now)
            elif isinstance(event, TransportFailed):
                self._branch_final(branch, self._synthesized(branch, 503), now)
            elif isinstance(event, Terminated):
                host.remove_client(branch.key)
        host.schedule(branch)

    def _synthesized(self, branch: Branch, status: int) -> Response:
        return Response.for_request(branch.context.request, status, to_tag=new_branch()[7:])

    def branch_response(self, branch: Branch, response: Response, now: float) -> None:
        """A response that matched `branch`'s transaction."""
        try:
            branch.txn.receive_response(response, now)
        except TransactionError:
            return
        self._pump_branch(branch, now)

    def transport_failed(self, branch: Branch, now: float) -> None:
        try:
            branch.txn.transport_error(now)
        except TransactionError:
            return
        self._pump_branch(branch, now)

    def branch_timer(self, branch: Branch, now: float) -> None:
        if branch.timer_c is not None and branch.timer_c <= now and branch.final is None:
            branch.timer_c = None
            if branch.provisional:
                self._cancel_branch(branch, now)
            else:
                self._branch_final(branch, self._synthesized(branch, 408), now)
        try:
            branch.txn.handle_timer(now)
        except TransactionError:
            return
        self._pump_branch(branch, now)

    def _branch_response(self, branch: Branch, response: Response, now: float) -> None:
        context = branch.context
        status = response.status
        if status < 200:
            if status == 100:
                return
            branch.provisional = True
            if branch.timer_c is not None:
                branch.timer_c = now + TIMER_C
            if branch.cancel_pending or context.cancelled:
                self._cancel_branch(branch, now)
            self.host.respond(context, upstream(response), now)
            return
        if status < 300:
            if branch.final is None:
                branch.final = response
            context.got_2xx = True
            context.stop_forking = True
            self.host.respond(context, upstream(response), now)
            if context.is_invite:
                self._cancel_others(context, branch, now)
            self._finish_if_done(context, now)
            return
        self._branch_final(branch, upstream(response), now)

    def _branch_final(self, branch: Branch, response: Response, now: float) -> None:
        """A final non-2xx, as it would go upstream."""
        if branch.final is not None:
            return
        branch.final = response
        context = branch.context
        if response.status >= 600 and context.is_invite:
            context.stop_forking = True
            self._cancel_others(context, branch, now)
        if all(b.final is not None for b in context.branches):
            self._next_group(context, now)

    def _finish_if_done(self, context: Context, now: float) -> None:
        if context.done:
            return
        pending = any(b.final is None for b in context.branches)
        if pending or (context.groups and not (context.cancelled or context.stop_forking)):
            return
        context.done = True
        if context.got_2xx:
            return
        finals = [b.final for b in context.branches if b.final is not None]
        if finals:
            best = best_response(finals)
        else:
            status = 487 if context.cancelled else 480
            best = Response.for_request(context.request, status, to_tag=new_branch()[7:])
        self.host.respond(context, best, now)

    # -- CANCEL --------------------------------------------------------------
    def cancel(self, context: Context, now: float) -> None:
        """A CANCEL matched this context (§16.10): cancel every pending branch."""
        context.cancelled = True
        for branch in context.branches:
            if branch.final is None:
                self._cancel_branch(branch, now)
        self._finish_if_done(context, now)

    def _cancel_others(self, context: Context, winner: Branch, now: float) -> None:
        for branch in context.branches:
            if branch is not winner and branch.final is None:
                self._cancel_branch(branch, now)

    def _cancel_branch(self, branch: Branch, now: float) -> None:
        """CANCEL a branch: at once if it answered provisionally, else as soon as it
        does (RFC 3261 §9.1 forbids cancelling before any response)."""
        if branch.cancelled or branch.final is not None or not branch.context.is_invite:
            return
        if not branch.provisional:
            branch.cancel_pending = True
            return
        branch.cancelled = True
        cancel = build_cancel(branch.request)
        entry = CancelEntry(self, cancel, branch.target.flow, now)
        self.host.add_client(entry.key, entry)
        self.pump_cancel(entry, now)

    def pump_cancel(self, entry: CancelEntry, now: float) -> None:
        for message in entry.txn.messages_to_send():
            self.host.send(message.to_bytes(), entry.flow)
        while (event := entry.txn.next_event()) is not None:
            if isinstance(event, Terminated):
                self.host.remove_client(entry.key)
        self.host.schedule(entry)

    def cancel_response(self, entry: CancelEntry, response: Response, now: float) -> None:
        try:
            entry.txn.receive_response(response, now)
        except TransactionError:
            return
        self.pump_cancel(entry, now)

    def cancel_timer(self, entry: CancelEntry, now: float) -> None:
        try:
            entry.txn.handle_timer(now)
        except TransactionError:
            return
        self.pump_cancel(entry, now)
