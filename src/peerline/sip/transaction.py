"""SIP transactions as state machines driven by messages and time (RFC 3261 §17,
with RFC 6026's Accepted state for INVITE).

Every transition of the four machines is a row of the tables below,
(State, Input) -> (State, actions), so the diagrams can be drawn from the data
and a test can sweep every pair. A pair that is not in a table is our own
mistake (`TransactionError`), never a crash and never silently ignored.

A transaction is fed the current time with every input and never reads a
clock: `get_timer()` says when it next wants `handle_timer(now)`; what it has
to send comes out of `messages_to_send()`, what the TU must know out of
`next_event()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, NamedTuple

from peerline.sip.errors import TransactionError
from peerline.sip.message import Message, Request, Response, build_ack
from peerline.sip.methods import Method


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17.1.1.1 and Table 4 (defaults are the RFC's)."""

    #: Round-trip time estimate.
    t1: float = 0.5
    #: Longest retransmit interval for non-INVITE requests and INVITE responses.
    t2: float = 4.0
    #: Longest time a message stays in the network.
    t4: float = 5.0
    #: Timer D on unreliable transports: "at least 32 seconds".
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0 or self.timer_d < 0:
            raise ValueError("timers need 0 < T1 <= T2, T4 > 0 and D >= 0")


class State(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Timer(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    A = "A"  # INVITE request retransmit (unreliable transports)
    B = "B"  # INVITE transaction timeout
    D = "D"  # wait for response retransmits after a failure
    E = "E"  # non-INVITE request retransmit (unreliable transports)
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE failure response retransmit (unreliable transports)
    H = "H"  # wait for ACK
    I = "I"  # noqa: E741 -- the RFC's name; wait for ACK retransmits
    J = "J"  # wait for non-INVITE request retransmits
    K = "K"  # wait for response retransmits
    L = "L"  # RFC 6026: wait for INVITE retransmits after a 2xx
    M = "M"  # RFC 6026: wait for 2xx retransmits


class Input(Enum):
    """What can happen to a transaction. For a client the response classes are
    responses received; for a server, responses the TU asks to send."""

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    REQUEST = "request retransmission"
    ACK = "ACK"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"


TIMER_INPUT = {timer: Input[f"TIMER_{timer.value}"] for timer in Timer}
INPUT_TIMER = {event: timer for timer, event in TIMER_INPUT.items()}


class Action(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    SEND_REQUEST = "send the request"
    SEND_ACK = "send the ACK"
    PASS_RESPONSE = "pass the response to the TU"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "resend the last response"
    PASS_ACK = "pass the ACK to the TU"
    REPORT_TIMEOUT = "report a timeout"
    REPORT_TRANSPORT_ERROR = "report a transport error"
    DOUBLE_INTERVAL = "re-arm the timer at twice its interval"
    DOUBLE_INTERVAL_UP_TO_T2 = "re-arm the timer at twice its interval, at most T2"
    INTERVAL_T2 = "re-arm the timer at T2"


class Transition(NamedTuple):
    target: State
    actions: tuple[Action, ...] = ()


S, I, A = State, Input, Action  # noqa: E741 -- short names keep each row on one line
_ABSORB: tuple[Action, ...] = ()

#: INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 5).
INVITE_CLIENT: Mapping[tuple[State, Input], Transition] = {
    (S.CALLING, I.TIMER_A): Transition(S.CALLING, (A.SEND_REQUEST, A.DOUBLE_INTERVAL)),
    (S.CALLING, I.TIMER_B): Transition(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.CALLING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.CALLING, I.SUCCESS): Transition(S.ACCEPTED, (A.PASS_RESPONSE,)),
    (S.CALLING, I.FAILURE): Transition(S.COMPLETED, (A.SEND_ACK, A.PASS_RESPONSE)),
    (S.CALLING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.PROCEEDING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, I.SUCCESS): Transition(S.ACCEPTED, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, I.FAILURE): Transition(S.COMPLETED, (A.SEND_ACK, A.PASS_RESPONSE)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.COMPLETED, I.PROVISIONAL): Transition(S.COMPLETED, _ABSORB),
    (S.COMPLETED, I.SUCCESS): Transition(S.COMPLETED, _ABSORB),
    (S.COMPLETED, I.FAILURE): Transition(S.COMPLETED, (A.SEND_ACK,)),
    (S.COMPLETED, I.TIMER_D): Transition(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.ACCEPTED, I.PROVISIONAL): Transition(S.ACCEPTED, _ABSORB),
    (S.ACCEPTED, I.SUCCESS): Transition(S.ACCEPTED, (A.PASS_RESPONSE,)),
    (S.ACCEPTED, I.FAILURE): Transition(S.ACCEPTED, _ABSORB),
    (S.ACCEPTED, I.TIMER_M): Transition(S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): Transition(S.ACCEPTED, _ABSORB),
}

#: Non-INVITE client transaction (RFC 3261 Figure 6).
NON_INVITE_CLIENT: Mapping[tuple[State, Input], Transition] = {
    (S.TRYING, I.TIMER_E): Transition(S.TRYING, (A.SEND_REQUEST, A.DOUBLE_INTERVAL_UP_TO_T2)),
    (S.TRYING, I.TIMER_F): Transition(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.TRYING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.TRYING, I.SUCCESS): Transition(S.COMPLETED, (A.PASS_RESPONSE,)),
    (S.TRYING, I.FAILURE): Transition(S.COMPLETED, (A.PASS_RESPONSE,)),
    (S.TRYING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.PROCEEDING, I.TIMER_E): Transition(S.PROCEEDING, (A.SEND_REQUEST, A.INTERVAL_T2)),
    (S.PROCEEDING, I.TIMER_F): Transition(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.PROCEEDING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, I.SUCCESS): Transition(S.COMPLETED, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, I.FAILURE): Transition(S.COMPLETED, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.COMPLETED, I.PROVISIONAL): Transition(S.COMPLETED, _ABSORB),
    (S.COMPLETED, I.SUCCESS): Transition(S.COMPLETED, _ABSORB),
    (S.COMPLETED, I.FAILURE): Transition(S.COMPLETED, _ABSORB),
    (S.COMPLETED, I.TIMER_K): Transition(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(S.COMPLETED, _ABSORB),
}

#: INVITE server transaction (RFC 3261 Figure 7 as RFC 6026 Figure 7 changes it).
INVITE_SERVER: Mapping[tuple[State, Input], Transition] = {
    (S.PROCEEDING, I.REQUEST): Transition(S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.SUCCESS): Transition(S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.FAILURE): Transition(S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.COMPLETED, I.REQUEST): Transition(S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, I.ACK): Transition(S.CONFIRMED),
    (S.COMPLETED, I.TIMER_G): Transition(
        S.COMPLETED, (A.RESEND_RESPONSE, A.DOUBLE_INTERVAL_UP_TO_T2)
    ),
    (S.COMPLETED, I.TIMER_H): Transition(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.CONFIRMED, I.REQUEST): Transition(S.CONFIRMED, _ABSORB),
    (S.CONFIRMED, I.ACK): Transition(S.CONFIRMED, _ABSORB),
    (S.CONFIRMED, I.TIMER_I): Transition(S.TERMINATED),
    (S.CONFIRMED, I.TRANSPORT_ERROR): Transition(S.CONFIRMED, _ABSORB),
    (S.ACCEPTED, I.REQUEST): Transition(S.ACCEPTED, _ABSORB),
    (S.ACCEPTED, I.ACK): Transition(S.ACCEPTED, (A.PASS_ACK,)),
    (S.ACCEPTED, I.SUCCESS): Transition(S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.ACCEPTED, I.TIMER_L): Transition(S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): Transition(S.ACCEPTED, (A.REPORT_TRANSPORT_ERROR,)),
}

#: Non-INVITE server transaction (RFC 3261 Figure 8).
NON_INVITE_SERVER: Mapping[tuple[State, Input], Transition] = {
    (S.TRYING, I.REQUEST): Transition(S.TRYING, _ABSORB),
    (S.TRYING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.TRYING, I.SUCCESS): Transition(S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.TRYING, I.FAILURE): Transition(S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.TRYING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.PROCEEDING, I.REQUEST): Transition(S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.PROVISIONAL): Transition(S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.SUCCESS): Transition(S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.FAILURE): Transition(S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (S.COMPLETED, I.REQUEST): Transition(S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, I.TIMER_J): Transition(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
}

#: Timers started on entering a state (only those with a duration on this transport).
ENTRY_TIMERS: Mapping[State, tuple[Timer, ...]] = {
    S.CALLING: (Timer.A, Timer.B),
    S.TRYING: (Timer.E, Timer.F),
    S.COMPLETED: (Timer.D, Timer.G, Timer.H, Timer.J, Timer.K),
    S.CONFIRMED: (Timer.I,),
    S.ACCEPTED: (Timer.L, Timer.M),
}
#: Timers that keep running into a state instead of being cancelled (§17.1.2.2:
#: E and F go on in Proceeding).
CARRIED_TIMERS: Mapping[State, frozenset[Timer]] = {S.PROCEEDING: frozenset({Timer.E, Timer.F})}
#: Which timers each machine uses, so that one entry table serves all four.
_MACHINE_TIMERS = {
    "invite client": frozenset({Timer.A, Timer.B, Timer.D, Timer.M}),
    "non-invite client": frozenset({Timer.E, Timer.F, Timer.K}),
    "invite server": frozenset({Timer.G, Timer.H, Timer.I, Timer.L}),
    "non-invite server": frozenset({Timer.J}),
}


def timer_duration(timer: Timer, config: TimerConfig, *, reliable: bool) -> float | None:
    """Initial duration of a timer, or None when it does not run on this transport
    (RFC 3261 Table 4, RFC 6026 §8.4 and §8.11)."""
    t1, t4 = config.t1, config.t4
    durations: dict[Timer, float | None] = {
        Timer.A: None if reliable else t1,
        Timer.B: 64 * t1,
        Timer.D: 0.0 if reliable else config.timer_d,
        Timer.E: None if reliable else t1,
        Timer.F: 64 * t1,
        Timer.G: None if reliable else t1,
        Timer.H: 64 * t1,
        Timer.I: 0.0 if reliable else t4,
        Timer.J: 0.0 if reliable else 64 * t1,
        Timer.K: 0.0 if reliable else t4,
        Timer.L: 64 * t1,
        Timer.M: 64 * t1,
    }
    return durations[timer]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response for the TU (client transactions)."""

    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """An ACK for a 2xx that reached the server transaction (RFC 6026 Accepted)."""

    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut:
    """No response (Timer B/F) or no ACK (Timer H) in time."""

    timer: Timer


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailed:
    """The transport could not send what the transaction asked it to send."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Terminated:
    """The transaction is over: its owner forgets it."""


TransactionEvent = ResponseReceived | AckReceived | TimedOut | TransportFailed | Terminated


def response_input(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    return Input.SUCCESS if status < 300 else Input.FAILURE


class Transaction:
    """What the four machines share: the table walk, timers, and the queues."""

    table: ClassVar[Mapping[tuple[State, Input], Transition]]
    machine: ClassVar[str]
    start: ClassVar[State]
    #: Client transactions send their request as soon as they exist.
    sends_request: ClassVar[bool] = False

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        now: float,
        config: TimerConfig | None = None,
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.config = config or TimerConfig()
        self.state = self.start
        self.last_response: Response | None = None
        self._outgoing: list[Message] = []
        self._events: deque[TransactionEvent] = deque()
        self._deadlines: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}
        if self.sends_request:
            self._outgoing.append(request)
        self._enter(self.start, now)

    # -- outputs -------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None."""
        return min(self._deadlines.values(), default=None)

    def messages_to_send(self) -> list[Message]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_event(self) -> TransactionEvent | None:
        return self._events.popleft() if self._events else None

    @property
    def timers(self) -> dict[Timer, float]:
        """Running timers and their deadlines (for tests and diagnostics)."""
        return dict(self._deadlines)

    # -- inputs --------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        """Fire every timer that is due, earliest first."""
        while True:
            due = [(deadline, timer.value, timer) for timer, deadline in self._deadlines.items()]
            due = [entry for entry in due if entry[0] <= now]
            if not due:
                return
            _, _, timer = min(due)
            del self._deadlines[timer]
            self.process(TIMER_INPUT[timer], now)

    def transport_error(self, now: float) -> None:
        """The transport failed to send this transaction's last message."""
        self.process(Input.TRANSPORT_ERROR, now)

    # -- the machine ---------------------------------------------------------
    def process(self, event: Input, now: float, message: Message | None = None) -> None:
        """Apply one input as the table says. The methods above are the usual way
        in; this one is for sweeping the table. `message` is the response or
        request the input carries, if any."""
        transition = self.table.get((self.state, event))
        timer = INPUT_TIMER.get(event)
        if timer is not None and timer_duration(timer, self.config, reliable=self.reliable) is None:
            transition = None  # e.g. Timer A on TCP: it never runs, so it cannot fire
        if transition is None:
            raise TransactionError(
                f"{self.machine} transaction: {event.value} in {self.state.value}"
            )
        for action in transition.actions:
            self._act(action, message)
        if transition.target is not self.state:
            self._enter(transition.target, now)
        elif event in _RETRANSMIT_TIMERS:
            timer = _RETRANSMIT_TIMERS[event]
            self._deadlines[timer] = now + self._intervals[timer]

    def _enter(self, state: State, now: float) -> None:
        self.state = state
        carried = CARRIED_TIMERS.get(state, frozenset())
        self._deadlines = {t: d for t, d in self._deadlines.items() if t in carried}
        if state is State.TERMINATED:
            self._deadlines = {}
            self._events.append(Terminated())
            return
        for timer in ENTRY_TIMERS.get(state, ()):
            if timer not in _MACHINE_TIMERS[self.machine]:
                continue
            duration = timer_duration(timer, self.config, reliable=self.reliable)
            if duration is not None:
                self._intervals[timer] = duration
                self._deadlines[timer] = now + duration

    def _act(self, action: Action, message: Message | None) -> None:
        if action is Action.SEND_REQUEST:
            self._outgoing.append(self.request)
        elif action is Action.PASS_RESPONSE:
            self._events.append(ResponseReceived(response=_response(message, action)))
        elif action is Action.SEND_ACK:
            self._outgoing.append(build_ack(self.request, _response(message, action)))
        elif action is Action.SEND_RESPONSE:
            self.last_response = _response(message, action)
            self._outgoing.append(self.last_response)
        elif action is Action.RESEND_RESPONSE:
            if self.last_response is not None:
                self._outgoing.append(self.last_response)
        elif action is Action.PASS_ACK:
            if not isinstance(message, Request):
                raise TransactionError("passing an ACK up needs the ACK")
            self._events.append(AckReceived(request=message))
        elif action is Action.REPORT_TIMEOUT:
            self._events.append(TimedOut(timer=self._firing_timer()))
        elif action is Action.REPORT_TRANSPORT_ERROR:
            self._events.append(TransportFailed())
        else:
            self._backoff(action)

    def _firing_timer(self) -> Timer:
        timeout = {"invite client": Timer.B, "non-invite client": Timer.F}
        return timeout.get(self.machine, Timer.H)

    def _backoff(self, action: Action) -> None:
        timer = {"invite client": Timer.A, "non-invite client": Timer.E}.get(self.machine, Timer.G)
        interval = self._intervals[timer]
        if action is Action.DOUBLE_INTERVAL:
            interval *= 2
        elif action is Action.DOUBLE_INTERVAL_UP_TO_T2:
            interval = min(2 * interval, self.config.t2)
        else:
            interval = self.config.t2
        self._intervals[timer] = interval


def _response(message: Message | None, action: Action) -> Response:
    if not isinstance(message, Response):
        raise TransactionError(f"cannot {action.value} without a response")
    return message


_RETRANSMIT_TIMERS = {Input.TIMER_A: Timer.A, Input.TIMER_E: Timer.E, Input.TIMER_G: Timer.G}


class ClientTransaction(Transaction):
    """Sends a request and delivers its responses; the request goes out at once."""

    sends_request: ClassVar[bool] = True

    def receive_response(self, response: Response, now: float) -> None:
        self.process(response_input(response.status), now, response)


class InviteClientTransaction(ClientTransaction):
    table = INVITE_CLIENT
    machine = "invite client"
    start = State.CALLING


class NonInviteClientTransaction(ClientTransaction):
    table = NON_INVITE_CLIENT
    machine = "non-invite client"
    start = State.TRYING


class ServerTransaction(Transaction):
    """Absorbs retransmitted requests and (re)sends the TU's responses."""

    def receive_request(self, request: Request, now: float) -> None:
        """A request that matched this transaction: a retransmission, or an ACK."""
        event = Input.ACK if request.method == Method.ACK else Input.REQUEST
        self.process(event, now, request)

    def send_response(self, response: Response, now: float) -> None:
        """The TU's response; it comes out of `messages_to_send` and is retransmitted
        as the RFC requires."""
        self.process(response_input(response.status), now, response)


class InviteServerTransaction(ServerTransaction):
    table = INVITE_SERVER
    machine = "invite server"
    start = State.PROCEEDING

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        now: float,
        config: TimerConfig | None = None,
        send_trying: bool = True,
    ) -> None:
        """`send_trying`: answer 100 Trying at once (RFC 3261 §17.2.1 wants it
        within 200 ms unless the TU is known to answer sooner)."""
        super().__init__(request, reliable=reliable, now=now, config=config)
        if send_trying:
            self.send_response(Response.for_request(request, 100), now)


class NonInviteServerTransaction(ServerTransaction):
    table = NON_INVITE_SERVER
    machine = "non-invite server"
    start = State.TRYING


def client_transaction(
    request: Request, *, reliable: bool, now: float, config: TimerConfig | None = None
) -> InviteClientTransaction | NonInviteClientTransaction:
    """The client transaction for `request` (never for ACK, which has none)."""
    if request.method == Method.ACK:
        raise TransactionError("an ACK is sent without a client transaction")
    kind = (
        InviteClientTransaction if request.method == Method.INVITE else NonInviteClientTransaction
    )
    return kind(request, reliable=reliable, now=now, config=config)


def server_transaction(
    request: Request, *, reliable: bool, now: float, config: TimerConfig | None = None
) -> InviteServerTransaction | NonInviteServerTransaction:
    """The server transaction for a new request (never for ACK)."""
    if request.method == Method.ACK:
        raise TransactionError("an ACK creates no server transaction")
    if request.method == Method.INVITE:
        return InviteServerTransaction(request, reliable=reliable, now=now, config=config)
    return NonInviteServerTransaction(request, reliable=reliable, now=now, config=config)
