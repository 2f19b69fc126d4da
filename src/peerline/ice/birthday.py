"""The birthday technique: a direct path where ICE alone finds none (a peerline
extension, negotiated with the ice-options token `peerline+birthday`).

The case: side S is behind a NAT whose mapping depends on the destination
(symmetric: a new public port per destination), side P behind one that maps
endpoint-independently but filters by address and port (port-restricted cone).
S's server-reflexive port is useless to P (S's NAT picks another port toward P),
and P's NAT drops whatever S sends until P has sent to exactly that public
(IP, port) of S. ICE's checks never meet.

How it meets anyway. Both sides learned during gathering whether their NAT maps
endpoint-independently (`Mapping`, signalled as `a=x-peerline-mapping:...`).
When S is `dependent` and P `independent` and both advertised the token:

- S, the OPENER, opens N extra UDP sockets and sends one connectivity check from
  each to P's server-reflexive address: each opens a fresh mapping in S's NAT, at
  a random public port, that lets in exactly P's server-reflexive address.
- P, the PROBER, sends M checks from the host socket behind its server-reflexive
  address to random ports of S's public IP.

A probe that lands on one of the N open ports reaches S's socket, and S's answer
and S's triggered check go back out through that same mapping, which P's NAT now
lets in (P sent to it). The order does not matter: an opener that reaches P's NAT
after P probed its port goes in too. Either way the agents see ordinary checks
and build an ordinary valid (peer-reflexive) pair, which the controlling agent
nominates because it outranks every relayed pair.

With N open ports in a space of 64,512 (1024-65535) and M probes to distinct
random ports, the chance that at least one meets is

    p = 1 - (1 - N/64512)^M

Defaults: N = 256, M = 2000, paced at 500 checks/s (4 s of probes), within a
5 s budget: p = 0.9996 (M = 1000 would give 0.981, N = 128 with M = 2000 also
0.981). The expected first hit comes after 64512/256 ≈ 252 probes, about 0.5 s.

Why raw checks and not agent checks. Through the agent's seam (guessed remote
candidates), each probe would be a pair in the checklist: paced at Ta (20/s, so
2000 probes take 100 s), each retransmitted with an RTO that RFC 8445 §14.3
stretches by the number of busy pairs (Ta × 2000 = 100 s), which slows the real
pairs' checks too. So a small planner here (`ProbePlanner`) sends single,
unretransmitted checks built with `build_check`, signed with the agent's own
credentials, role and tie-breaker, at its own pace; the agent's checklist only
ever sees the hit: S admits an extra socket as an unsignalled local candidate
when the first datagram from P's server-reflexive address reaches it (nothing
else can pass S's NAT to it), before the agent sees that datagram, so the
agent answers and triggers its check like for any peer. On P nothing is added:
S's check arrives from an unknown address and P's agent learns it as
peer-reflexive (RFC 8445 §7.3.1.3).

Why hold the relay rather than renominate. RFC 8445 has no renomination, and
once the checklist completes the agent ignores checks that do not nominate,
so a hit after a relay nomination would be lost; an ICE restart needs a new
offer/answer. So while the technique runs, the controlling agent nominates no
relayed pair (`Agent.hold_relayed_nomination`) for at most the budget; a
direct valid pair is nominated at once. After the budget (or when a direct pair
is selected) the hold is lifted and ICE goes on as without the technique: the
relay takes over. Both sides decide to run it from the same signalled facts
(`plan_birthday`), so the side that controls holds exactly when the other
side is trying.

One hole is enough: each side stops sending at the first datagram through it,
and the extra sockets close when the run ends, but for the selected pair's.

Nothing changes for standard peers (no token: no plan), for two cones (both
`independent`) or two symmetric NATs (both `dependent`: the relay at once).
Where ICE gets through anyway (a full cone facing a symmetric NAT lets S's own
checks in), the first of them stops the technique and ICE's pair is used.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from peerline.ice.agent import Agent, Transmit
from peerline.ice.candidate import Candidate, CandidateType, peer_reflexive_priority
from peerline.ice.errors import IceUsageError
from peerline.ice.messages import build_check
from peerline.ice.sdp import Credentials
from peerline.stun import (
    AddressFamily,
    MalformedMessage,
    MessageClass,
    TransportAddress,
    is_stun,
    parse,
    short_term_key,
    verify_message_integrity,
)

BIRTHDAY_OPTION = "peerline+birthday"
"""The ice-options token both sides advertise (RFC 8839 §5.6: others ignore it; a
token is ice-chars, so no hyphen)."""

MAPPING_ATTRIBUTE = "x-peerline-mapping"
"""The description line that says how our NAT maps: `a=x-peerline-mapping:dependent`."""

FIRST_PORT = 1024
PORT_SPACE = 65536 - FIRST_PORT
"""Where a NAT draws random ports for sources above 1023 (Linux: 1024-65535)."""

EXTRA_LOCAL_PREFERENCE = 1
"""Local preference of an admitted extra socket: below every gathered host address."""

MAX_ADMITTED = 4
"""Extra sockets that may become local candidates: the first hits. A NAT that lets
everything in (a full cone) answers every opener; the agent needs one pair, not 256."""


class Mapping(Enum):
    """How our NAT maps, as far as gathering could tell (RFC 4787 §4.1)."""

    INDEPENDENT = "independent"
    """The same public address toward two destinations of different IPs (or no NAT)."""
    DEPENDENT = "dependent"
    """A different public address toward different destinations."""
    UNKNOWN = "unknown"
    """Fewer than two destinations answered: no verdict."""

    @classmethod
    def parse(cls, text: str) -> Mapping:
        """Lenient: a value a later version may add reads as UNKNOWN."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            return cls.UNKNOWN


def judge_mapping(
    base: TransportAddress, mapped: dict[TransportAddress, TransportAddress]
) -> Mapping:
    """The verdict for one socket at `base` from what each destination saw
    (destination -> mapped address).

    DEPENDENT as soon as two destinations saw different addresses; INDEPENDENT
    when two destinations with different IPs saw the same one (two ports of one
    IP cannot tell an address-dependent NAT from an independent one), or when
    a destination saw the base itself (no translation at all).
    """
    if any(address.ip == base.ip for address in mapped.values()):
        return Mapping.INDEPENDENT
    if len(set(mapped.values())) > 1:
        return Mapping.DEPENDENT
    if len({destination.ip for destination in mapped}) > 1:
        return Mapping.INDEPENDENT
    return Mapping.UNKNOWN


def combine_mappings(verdicts: Iterable[Mapping]) -> Mapping:
    """One value for the description from each socket's verdict: any DEPENDENT
    wins (the peer must not count on our ports), then any INDEPENDENT."""
    found = set(verdicts)
    for verdict in (Mapping.DEPENDENT, Mapping.INDEPENDENT):
        if verdict in found:
            return verdict
    return Mapping.UNKNOWN


def success_probability(ports: int, probes: int, space: int = PORT_SPACE) -> float:
    """1 - (1 - N/space)^M: the chance that M probes to distinct random ports
    find at least one of N open ones (independent draws: a slight underestimate)."""
    if ports >= space:
        return 1.0
    return 1.0 - math.exp(probes * math.log1p(-ports / space))


@dataclass(frozen=True, slots=True, kw_only=True)
class BirthdayConfig:
    """The technique's bounds (see the module docstring for the odds).

    - `enabled`: advertise the token and run the technique when it applies.
    - `ports`: N, extra sockets the side behind the symmetric NAT opens.
    - `probes`: M, checks the other side sends to random ports.
    - `rate`: checks per second, on either side.
    - `budget`: seconds from the start after which the technique stops and the
      relay may be nominated; probes not sent by then are not sent.
    """

    enabled: bool = True
    ports: int = 256
    probes: int = 2000
    rate: float = 500.0
    budget: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.ports <= 4096:
            raise ValueError(f"birthday ports must be 1-4096, not {self.ports}")
        if not 1 <= self.probes <= PORT_SPACE:
            raise ValueError(f"birthday probes must be 1-{PORT_SPACE}, not {self.probes}")
        if not 0 < self.rate <= 10_000:
            raise ValueError(f"birthday rate must be in (0, 10000] per second, not {self.rate}")
        if not 0 < self.budget <= 120:
            raise ValueError(f"birthday budget must be in (0, 120] seconds, not {self.budget}")

    @property
    def probability(self) -> float:
        """The chance of a hit if every probe is sent (the budget may cut them short)."""
        return success_probability(
            self.ports, min(self.probes, math.floor(self.rate * self.budget))
        )


# -- who does what --------------------------------------------------------------------


class BirthdayRole(Enum):
    OPENER = "opener"
    """Behind the dependent (symmetric) NAT: opens many ports toward the peer."""
    PROBER = "prober"
    """Behind the independent NAT: probes random ports of the peer's public IP."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BirthdayPlan:
    """What this side does: from `base`'s IP (OPENER: bind the extra sockets
    there; PROBER: send from that socket) toward `peer_ip`; an OPENER sends to
    `target`, the peer's server-reflexive address."""

    role: BirthdayRole
    base: TransportAddress
    peer_ip: str
    target: TransportAddress | None = None


def _reflexive_v4(candidates: Iterable[Candidate]) -> Candidate | None:
    for candidate in candidates:
        if (
            candidate.type is CandidateType.SERVER_REFLEXIVE
            and candidate.address.family is AddressFamily.IPV4
            and candidate.related_address is not None
        ):
            return candidate
    return None


def plan_birthday(
    *,
    negotiated: bool,
    local: Mapping,
    remote: Mapping,
    local_candidates: Sequence[Candidate],
    remote_candidates: Sequence[Candidate],
) -> BirthdayPlan | None:
    """Whether the technique runs, and as which side; None when it does not.

    Only signalled facts decide (the token, both mappings, an IPv4
    server-reflexive candidate on each side), so both sides come to the same
    answer and the controlling one holds the relay exactly when it runs.
    """
    if not negotiated:
        return None
    ours, theirs = _reflexive_v4(local_candidates), _reflexive_v4(remote_candidates)
    if ours is None or theirs is None or ours.related_address is None:
        return None
    base = TransportAddress(*ours.related_address)
    if local is Mapping.DEPENDENT and remote is Mapping.INDEPENDENT:
        return BirthdayPlan(
            role=BirthdayRole.OPENER,
            base=base,
            peer_ip=theirs.address.ip,
            target=TransportAddress(*theirs.address),
        )
    if local is Mapping.INDEPENDENT and remote is Mapping.DEPENDENT:
        return BirthdayPlan(role=BirthdayRole.PROBER, base=base, peer_ip=theirs.address.ip)
    return None


# -- the planner ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeHit:
    """Our probe from `base` to `destination` was answered (from `destination`)."""

    base: TransportAddress
    destination: TransportAddress
    at: float


class ProbePlanner:
    """Single checks from (base, destination) `targets`, in order, at `rate` per
    second from `now`; bounded in count (each target once, no retransmission)
    and in time (nothing after `deadline`). Sans-IO: `datagrams_to_send(now)`,
    `get_timer()`, and `receive()` for the answers.

    `make_check()` builds one signed request (a fresh transaction each call);
    `key` checks the answers' MESSAGE-INTEGRITY. Checks go out in batches of
    `batch` (so a few hundred per second wake the loop tens of times).
    """

    def __init__(
        self,
        targets: Sequence[tuple[TransportAddress, TransportAddress]],
        *,
        make_check: Callable[[], bytes],
        key: bytes,
        rate: float,
        now: float,
        deadline: float,
        batch: int | None = None,
    ) -> None:
        if not rate > 0:
            raise IceUsageError("the probe rate must be > 0")
        self._targets = list(targets)
        self._make_check = make_check
        self._key = key
        self._rate = rate
        self._start = now
        self._deadline = deadline
        self._batch = batch if batch is not None else max(1, round(rate / 50))
        self._pending: dict[bytes, tuple[TransportAddress, TransportAddress]] = {}
        self._sent: set[tuple[TransportAddress, TransportAddress]] = set()
        self._stopped = False
        self.sent = 0
        self.hits: list[ProbeHit] = []

    @property
    def done(self) -> bool:
        """Nothing more will be sent (all sent, stopped, or past the deadline)."""
        return self._stopped or self.sent >= len(self._targets)

    def stop(self) -> None:
        self._stopped = True

    def probed(self, base: TransportAddress, destination: TransportAddress) -> bool:
        """Whether a probe went from `base` to `destination`."""
        return (base, destination) in self._sent

    def get_timer(self) -> float | None:
        if self.done:
            return None
        due = self._start + (self.sent + self._batch - 1) / self._rate
        return min(due, self._deadline)

    def handle_timer(self, now: float) -> None:
        if now >= self._deadline:
            self._stopped = True

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        self.handle_timer(now)
        if self.done or now < self._start:
            return []
        allowed = min(len(self._targets), math.floor((now - self._start) * self._rate) + 1)
        out = []
        for base, destination in self._targets[self.sent : allowed]:
            data = self._make_check()
            self._pending[data[8:20]] = (base, destination)
            self._sent.add((base, destination))
            out.append(Transmit(data, base, destination))
        self.sent = max(self.sent, allowed)
        return out

    def receive(
        self, data: bytes, base: TransportAddress, source: TransportAddress, now: float
    ) -> bool:
        """True when `data` is a signed success answer to one of our probes, from
        where that probe went (consumed: the agent does not know it)."""
        if len(data) < 20 or data[8:20] not in self._pending or not is_stun(data):
            return False
        sent_from, destination = self._pending[data[8:20]]
        if (base, source) != (sent_from, destination):
            return False
        try:
            message = parse(data)
        except MalformedMessage:
            return False
        if message.message_class is not MessageClass.SUCCESS:
            return False
        if not verify_message_integrity(message, self._key):
            return False
        del self._pending[data[8:20]]
        self.hits.append(ProbeHit(base=base, destination=destination, at=now))
        return True


# -- one run beside an agent ----------------------------------------------------------


class BirthdayOutcome(Enum):
    RUNNING = "running"
    WON = "won"
    """A pair through a hole the technique opened was selected."""
    DIRECT = "direct"
    """ICE selected a direct pair of its own while the technique ran."""
    GAVE_UP = "gave-up"
    """The budget ran out without a direct pair: the relay (if any) takes over."""
    STOPPED = "stopped"
    """An ICE restart or close ended it first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BirthdayReport:
    """What the technique did, for logs, tests and the benchmark.

    `hit_after`: seconds from the start to the first datagram through a hole;
    `direct_after`: to the selection of a direct pair (None if neither);
    `attempt`: 2 for the run again when the peer turned up late.
    """

    role: BirthdayRole
    ports: int
    probes_sent: int
    outcome: BirthdayOutcome
    hit_after: float | None
    direct_after: float | None
    attempt: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "role": self.role.value,
            "ports": self.ports,
            "probes_sent": self.probes_sent,
            "outcome": self.outcome.value,
            "hit_after": None if self.hit_after is None else round(self.hit_after, 3),
            "direct_after": None if self.direct_after is None else round(self.direct_after, 3),
            "attempt": self.attempt,
        }


class BirthdayRun:
    """The technique for one side, beside (and through) its sans-IO `Agent`.

    The adapter offers it every datagram that arrives at one of the plan's
    sockets before the agent (`receive`: True means consumed), sends what
    `datagrams_to_send` returns, and keeps its timer like the agent's. `bases`
    are the OPENER's extra sockets (already open); a PROBER has none.
    """

    def __init__(
        self,
        agent: Agent,
        plan: BirthdayPlan,
        config: BirthdayConfig,
        *,
        remote: Credentials,
        bases: Sequence[TransportAddress],
        now: float,
        rng: random.Random | None = None,
        previous: BirthdayRun | None = None,
    ) -> None:
        self.plan = plan
        self._previous = previous
        """The run before this one (the peer was late): its holes count as ours."""
        self.attempt: int = 1 if previous is None else previous.attempt + 1
        self._agent = agent
        self._generation = agent.generation
        self._start = now
        self._deadline = now + config.budget
        self._extra = set(bases)
        self.admitted: set[TransportAddress] = set()
        """Extra sockets the agent now knows (the first hits, `MAX_ADMITTED` at most)."""
        self.keep: set[TransportAddress] = set()
        """Once finished: the extra sockets to keep open (the rest may close): the
        selected pair's when it won, none when ICE went direct by itself, the
        admitted ones otherwise (a late pair may still use them)."""
        self._hit_at: float | None = None
        self._direct_at: float | None = None
        self.outcome = BirthdayOutcome.RUNNING
        if plan.role is BirthdayRole.OPENER:
            assert plan.target is not None  # plan_birthday sets it for openers
            targets = [(base, plan.target) for base in bases]
            priority = Candidate.host(plan.base, local_preference=EXTRA_LOCAL_PREFERENCE).priority
        else:
            picker = rng or random.Random()
            ports = picker.sample(range(FIRST_PORT, 65536), config.probes)
            targets = [(plan.base, TransportAddress(plan.peer_ip, port)) for port in ports]
            priority = self._base_priority(plan.base)
        username = f"{remote.ufrag}:{agent.local_credentials.ufrag}"
        key = short_term_key(remote.pwd)

        def make_check() -> bytes:
            return build_check(
                username=username,
                key=key,
                priority=peer_reflexive_priority(priority),
                role=agent.role,
                tie_breaker=agent.tie_breaker,
                use_candidate=False,
            )

        self._planner = ProbePlanner(
            targets,
            make_check=make_check,
            key=key,
            rate=config.rate,
            now=now,
            deadline=self._deadline,
        )
        agent.hold_relayed_nomination(self._deadline)

    def _base_priority(self, base: TransportAddress) -> int:
        for candidate in self._agent.local_candidates:
            if candidate.type is CandidateType.HOST and candidate.address == base:
                return candidate.priority
        return Candidate.host(base).priority

    @property
    def finished(self) -> bool:
        return self.outcome is not BirthdayOutcome.RUNNING

    def report(self) -> BirthdayReport:
        def since(when: float | None) -> float | None:
            return None if when is None else when - self._start

        return BirthdayReport(
            role=self.plan.role,
            ports=len(self._extra),
            probes_sent=self._planner.sent,
            outcome=self.outcome,
            hit_after=since(self._hit_at),
            direct_after=since(self._direct_at),
            attempt=self.attempt,
        )

    # -- datagrams ------------------------------------------------------------------

    def receive(
        self, data: bytes, base: TransportAddress, source: TransportAddress, now: float
    ) -> bool:
        """A datagram at `base` from `source`, before the agent sees it. True: it
        answered one of our probes (consumed); False: pass it on to the agent."""
        if self.plan.role is BirthdayRole.OPENER:
            if base not in self._extra or source != self.plan.target:
                return False
            if base not in self.admitted and len(self.admitted) < MAX_ADMITTED:
                self._admit(base)
        elif base != self.plan.base or source.ip != self.plan.peer_ip:
            return False
        # Only through a hole can the peer reach this socket from there: one is
        # enough, so nothing more is sent.
        self._hit(now)
        self._planner.stop()
        return self._planner.receive(data, base, source, now)

    def _hit(self, now: float) -> None:
        if self._hit_at is None and not self.finished:
            self._hit_at = now

    def _admit(self, base: TransportAddress) -> None:
        """The first datagram from the peer reached this extra socket: make it a
        local candidate (never signalled) so the agent answers and checks back."""
        self.admitted.add(base)
        candidate = Candidate.host(base, local_preference=EXTRA_LOCAL_PREFERENCE)
        room = len(self._agent.pairs()) + len(self._agent.remote_candidates) + 1
        with contextlib.suppress(IceUsageError):  # the checklist failed: nothing to add to
            self._agent.add_local_candidate(candidate, signalled=False, max_pairs=room)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        self._watch(now)
        if self.finished:
            return []
        return self._planner.datagrams_to_send(now)

    # -- time -----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        if self.finished:
            return None
        timers = (self._planner.get_timer(), self._deadline)
        return min(t for t in timers if t is not None)

    def handle_timer(self, now: float) -> None:
        self._planner.handle_timer(now)
        self._watch(now)

    def stop(self) -> None:
        """End it now (the transport closes)."""
        self._finish(BirthdayOutcome.STOPPED)

    def _watch(self, now: float) -> None:
        if self.finished:
            return
        if self._agent.generation != self._generation:
            self._finish(BirthdayOutcome.STOPPED)
            return
        selected = self._agent.selected_pair()
        if selected is not None and not selected.relayed:
            self._direct_at = now
            ours = self._made(selected.base, selected.destination)
            self._finish(BirthdayOutcome.WON if ours else BirthdayOutcome.DIRECT)
            self.keep = self.admitted & {selected.base}
        elif now >= self._deadline:
            self._finish(BirthdayOutcome.GAVE_UP)

    def _made(self, base: TransportAddress, destination: TransportAddress) -> bool:
        """Whether this run (or the one before) opened the way from `base` to
        `destination`: an admitted extra socket, or a probed port."""
        if base in self.admitted or self._planner.probed(base, destination):
            return True
        return self._previous is not None and self._previous._made(base, destination)

    def _finish(self, outcome: BirthdayOutcome) -> None:
        if self.finished:
            return
        self.outcome = outcome
        self.keep = set(self.admitted)
        self._planner.stop()
        self._agent.hold_relayed_nomination(None)
