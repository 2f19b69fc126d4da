"""Candidate pairs and the checklist of one data stream (RFC 8445 §6.1.2, §6.1.4, §8.1.2).

The checklist decides *which* pair to check next and keeps the valid list; the
agent decides *when* (pacing) and does the STUN work. Every state change goes
through the tables in `peerline.ice.states`.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from peerline.ice.candidate import Candidate, CandidateType, TransportProtocol
from peerline.ice.states import (
    ChecklistInput,
    ChecklistState,
    PairInput,
    PairState,
    next_checklist_state,
    next_pair_state,
)
from peerline.stun import TransportAddress

DEFAULT_MAX_PAIRS = 100
"""RFC 8445 §6.1.2.5: a checklist is limited to 100 pairs unless configured."""

MAX_REVIVALS = 3
"""How often the peer's checks may bring one Failed pair back to Waiting
(§7.3.1.4 says every time). Two NATs that map per destination answer each
check from a new port, so each side's check fails and revives the other's
pair, round and round for ever; a few revivals cover the legitimate case (our
check failed before the peer's NAT opened)."""


@dataclass(frozen=True, slots=True)
class LocalCandidate:
    """A local candidate with its base: the address its datagrams leave from.

    For host and relayed candidates the base is the candidate's own address (for
    a relayed one the adapter sends through the TURN allocation that owns it);
    for reflexive ones it is the host address behind the NAT.
    """

    candidate: Candidate
    base: TransportAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class PairInfo:
    """A snapshot of a pair for events and callers: what talks to what, from where."""

    local: Candidate
    remote: Candidate
    base: TransportAddress
    component: int
    priority: int
    nominated: bool
    state: PairState

    @property
    def relayed(self) -> bool:
        """True when either side's candidate is a TURN relay."""
        return CandidateType.RELAYED in (self.local.type, self.remote.type)

    @property
    def destination(self) -> TransportAddress:
        """Where datagrams on this pair are sent."""
        return self.remote.address


def pair_priority(controlling_priority: int, controlled_priority: int) -> int:
    """RFC 8445 §6.1.2.3: 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D ? 1 : 0), where G is the
    controlling agent's candidate priority and D the controlled agent's, so both
    agents order the same pairs the same way."""
    g, d = controlling_priority, controlled_priority
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def _link_local(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_link_local


def can_pair(local: Candidate, remote: Candidate) -> bool:
    """RFC 8445 §6.1.2.2: same component, same IP family (and IPv6 link-local only
    with link-local); plus what this agent can use: UDP and resolved addresses."""
    return (
        local.component == remote.component
        and local.transport is TransportProtocol.UDP
        and remote.transport is TransportProtocol.UDP
        and remote.is_resolved
        and local.address.family == remote.address.family
        and _link_local(local.address.ip) == _link_local(remote.address.ip)
    )


class CandidatePair:
    """A local candidate (sending from `base`) paired with a remote candidate.

    Mutable: its state moves through `PAIR_TRANSITIONS`, its priority changes
    with the agent's role, and the agent notes on it what nomination needs.
    """

    __slots__ = (
        "base",
        "checked_at",
        "confirmed_at",
        "local",
        "nominate_on_success",
        "nominated",
        "priority",
        "remote",
        "revivals",
        "state",
        "valid_pair",
    )

    def __init__(
        self,
        local: Candidate,
        base: TransportAddress,
        remote: Candidate,
        *,
        controlling: bool,
        state: PairState = PairState.FROZEN,
    ) -> None:
        self.local = local
        self.base = base
        self.remote = remote
        self.state = state
        self.priority = 0
        self.set_role(controlling=controlling)
        self.nominated = False
        self.nominate_on_success = False
        """Controlled agent: the peer sent USE-CANDIDATE before our check succeeded
        (RFC 8445 §7.3.1.5), or the controlling agent's nomination check is queued."""
        self.valid_pair: CandidatePair | None = None
        """The valid pair the last successful check of this pair produced."""
        self.revivals = 0
        """How many times the peer's checks revived this pair from Failed."""
        self.confirmed_at: float | None = None
        """When the request of the last successful check was last sent (consent runs from it)."""
        self.checked_at: float | None = None
        """When its latest connectivity check first went out (None: never checked)."""

    @property
    def component(self) -> int:
        return self.local.component

    @property
    def foundation(self) -> tuple[str, str]:
        """RFC 8445 §6.1.2.6: the local and remote foundations together."""
        return (self.local.foundation, self.remote.foundation)

    @property
    def key(self) -> tuple[TransportAddress, TransportAddress, int]:
        """Pairs with the same base, remote address and component are redundant (§6.1.2.4)."""
        return (self.base, self.remote.address, self.local.component)

    def set_role(self, *, controlling: bool) -> None:
        """Recompute the priority for our role (after a role conflict, §7.3.1.1)."""
        ours, theirs = self.local.priority, self.remote.priority
        self.priority = pair_priority(ours, theirs) if controlling else pair_priority(theirs, ours)

    def apply(self, event: PairInput) -> PairState:
        """Move by the transition table; `InvalidTransition` if it has no entry."""
        self.state = next_pair_state(self.state, event)
        return self.state

    def info(self) -> PairInfo:
        return PairInfo(
            local=self.local,
            remote=self.remote,
            base=self.base,
            component=self.component,
            priority=self.priority,
            nominated=self.nominated,
            state=self.state,
        )

    def __repr__(self) -> str:
        return (
            f"<CandidatePair {self.local.type.value} {self.base}->{self.remote.address} "
            f"c{self.component} {self.state.value}{' nominated' if self.nominated else ''}>"
        )


_ACTIVE = (PairState.FROZEN, PairState.WAITING, PairState.IN_PROGRESS)


def _ready(pair: CandidatePair) -> bool:
    """A queued pair still worth a check: Waiting, or Succeeded and to be nominated."""
    return pair.state is PairState.WAITING or (
        pair.state is PairState.SUCCEEDED and pair.nominate_on_success
    )


class Checklist:
    """The pairs of one data stream, ordered by priority, with the triggered-check
    queue and the valid list (RFC 8445 §6.1.2, §6.1.4, §7.2.5.3)."""

    def __init__(
        self,
        components: Iterable[int],
        *,
        controlling: bool,
        max_pairs: int = DEFAULT_MAX_PAIRS,
    ) -> None:
        self.components = frozenset(components)
        self.controlling = controlling
        self.max_pairs = max_pairs
        self.state = ChecklistState.RUNNING
        self.pairs: list[CandidatePair] = []
        self.valid: list[CandidatePair] = []
        self._triggered: deque[CandidatePair] = deque()

    # -- forming pairs (§6.1.2.2 - §6.1.2.6, RFC 8838 §10) ---------------------------

    def add_pairs(
        self,
        locals_: Sequence[LocalCandidate],
        remotes: Sequence[Candidate],
        *,
        all_locals: Sequence[LocalCandidate] | None = None,
        max_pairs: int | None = None,
        waiting: bool = False,
    ) -> list[CandidatePair]:
        """Pair every usable local/remote combination not already in the list.

        A server-reflexive local candidate is replaced by the host candidate at
        its base (§6.1.2.4), which makes its pairs redundant with the host's and
        they are dropped; `all_locals` (default `locals_`) is where that host is
        looked for, so a caller can pair one new candidate without re-pairing
        the rest. New pairs start Waiting when no other pair has their
        foundation, or one that has it succeeded; Frozen otherwise.

        `max_pairs` raises the limit for the rest of this checklist's life (an
        extension adding many candidates on purpose); it never lowers it.
        `waiting` starts every new pair Waiting: an extension's probes share a
        foundation but each is worth its own check. Returns the pairs added and
        kept.
        """
        if max_pairs is not None:
            self.max_pairs = max(self.max_pairs, max_pairs)
        hosts = {
            lc.candidate.address: lc.candidate
            for lc in (locals_ if all_locals is None else all_locals)
            if lc.candidate.type is CandidateType.HOST
        }
        known = {pair.key for pair in self.pairs}
        fresh: list[CandidatePair] = []
        for local in locals_:
            candidate = local.candidate
            if candidate.type is CandidateType.PEER_REFLEXIVE:
                continue  # learned from checks; never paired (§7.2.5.3.1)
            if candidate.type is CandidateType.SERVER_REFLEXIVE:
                candidate = hosts.get(local.base, candidate)
            for remote in remotes:
                if not can_pair(candidate, remote):
                    continue
                pair = CandidatePair(candidate, local.base, remote, controlling=self.controlling)
                if pair.key in known:
                    continue
                known.add(pair.key)
                fresh.append(pair)
        fresh.sort(key=lambda p: p.priority, reverse=True)
        for pair in fresh:
            self._insert(pair)
            if waiting or self._starts_waiting(pair):
                pair.apply(PairInput.UNFREEZE)
        self._trim()
        kept = set(map(id, self.pairs))
        return [pair for pair in fresh if id(pair) in kept]

    def _starts_waiting(self, pair: CandidatePair) -> bool:
        same = [p for p in self.pairs if p is not pair and p.foundation == pair.foundation]
        return not same or any(p.state is PairState.SUCCEEDED for p in same)

    def _insert(self, pair: CandidatePair) -> None:
        index = len(self.pairs)
        while index and self.pairs[index - 1].priority < pair.priority:
            index -= 1
        self.pairs.insert(index, pair)

    def _trim(self) -> None:
        """§6.1.2.5: keep at most `max_pairs`, dropping first the pairs that failed
        (lowest priority first), then the lowest-priority pairs not checked yet."""
        excess = len(self.pairs) - self.max_pairs
        for states in ((PairState.FAILED,), (PairState.FROZEN, PairState.WAITING)):
            for pair in reversed(list(self.pairs)):
                if excess <= 0:
                    return
                if pair.state in states:
                    self._remove(pair)
                    excess -= 1

    @property
    def learning_limit(self) -> int:
        """How many peer-reflexive candidates the agent may learn from the peer's
        checks: half the list, so the other half stays for signalled candidates.
        Two symmetric NATs that filter loosely hand each other a new port per
        check, for ever; this is where that stops."""
        return max(1, self.max_pairs // 2)

    def _remove(self, pair: CandidatePair) -> None:
        self.pairs.remove(pair)
        if pair in self._triggered:
            self._triggered.remove(pair)

    def replace_remote(self, old: Candidate, new: Candidate) -> None:
        """The peer signalled `new` where we had learned `old` (same address): its
        pairs take the signalled candidate and its priority, and are re-sorted."""
        for pair in (*self.pairs, *self.valid):
            if pair.remote is old:
                pair.remote = new
                pair.set_role(controlling=self.controlling)
        self.pairs.sort(key=lambda p: p.priority, reverse=True)
        self.valid.sort(key=lambda p: p.priority, reverse=True)

    def find(
        self, base: TransportAddress, remote: TransportAddress, component: int
    ) -> CandidatePair | None:
        """The pair checked from `base` to `remote` for `component`, if listed."""
        for pair in self.pairs:
            if pair.key == (base, remote, component):
                return pair
        return None

    def add_triggered_pair(self, local: LocalCandidate, remote: Candidate) -> CandidatePair | None:
        """§7.3.1.4: a check arrived on a pair we do not list; add it, unpaced.

        The limit holds here too (§6.1.2.5), trimmed as `add_pairs` trims: a full
        list drops a failed pair, else its lowest-priority unchecked pair, which
        may be this new one (then None: not added).
        """
        pair = CandidatePair(local.candidate, local.base, remote, controlling=self.controlling)
        self._insert(pair)
        self._trim()
        return pair if pair in self.pairs else None

    # -- choosing the next check (§6.1.4.2) ------------------------------------------

    def trigger(self, pair: CandidatePair, *, nominate: bool = False) -> None:
        """Queue a triggered check (§7.3.1.4), or the nomination check (§8.1.1)."""
        if pair.state is PairState.FAILED:
            pair.revivals += 1
        pair.apply(PairInput.TRIGGER)
        if nominate:
            pair.nominate_on_success = True
        if pair not in self._triggered:
            self._triggered.append(pair)

    def next_check(self) -> CandidatePair | None:
        """The pair to check now, already moved by START, or None when nothing waits.

        The triggered queue comes first; then the highest-priority Waiting pair;
        then a Frozen pair whose foundation has nothing Waiting or In-Progress.
        """
        pair = self._choose()
        self._triggered = deque(p for p in self._triggered if p is not pair and _ready(p))
        if pair is None:
            return None
        if pair.state is PairState.FROZEN:
            pair.apply(PairInput.UNFREEZE)
        pair.apply(PairInput.START)
        return pair

    def _choose(self) -> CandidatePair | None:
        if self.state is ChecklistState.FAILED:
            return None
        queued = next((p for p in self._triggered if _ready(p)), None)
        if queued is not None:
            return queued
        waiting = next((p for p in self.pairs if p.state is PairState.WAITING), None)
        if waiting is not None:
            return waiting
        busy = {
            p.foundation
            for p in self.pairs
            if p.state in (PairState.WAITING, PairState.IN_PROGRESS)
        }
        return next(
            (p for p in self.pairs if p.state is PairState.FROZEN and p.foundation not in busy),
            None,
        )

    def has_work(self) -> bool:
        """True when `next_check` would return a pair."""
        return self._choose() is not None

    def retry(self, pair: CandidatePair) -> None:
        """§7.2.5.1: after a 487 the agent switched role; check the pair again."""
        if pair.apply(PairInput.ROLE_CONFLICT) is PairState.WAITING and pair not in self._triggered:
            self._triggered.append(pair)

    def count(self, *states: PairState) -> int:
        """How many listed pairs are in one of `states` (RTO uses Waiting + In-Progress)."""
        return sum(1 for p in self.pairs if p.state in states)

    def unfreeze_foundation(self, foundation: tuple[str, str]) -> None:
        """§7.2.5.3.3: a success unfreezes the Frozen pairs of its foundation."""
        for pair in self.pairs:
            if pair.state is PairState.FROZEN and pair.foundation == foundation:
                pair.apply(PairInput.UNFREEZE)

    # -- results ------------------------------------------------------------------------

    def add_valid(self, pair: CandidatePair) -> CandidatePair:
        """Add to the valid list (§7.2.5.3.2); an equal pair already there is reused."""
        for known in self.valid:
            if known.key == pair.key and known.local.address == pair.local.address:
                return known
        self.valid.append(pair)
        self.valid.sort(key=lambda p: p.priority, reverse=True)
        return pair

    def source_of(self, valid: CandidatePair) -> CandidatePair | None:
        """The listed pair whose check produced `valid` (to check it again with
        USE-CANDIDATE, §8.1.1), or None."""
        return next((p for p in self.pairs if p.valid_pair is valid), None)

    def invalidate(self, pair: CandidatePair) -> None:
        """A valid pair whose path broke (its nomination check failed) leaves the list."""
        if pair in self.valid:
            self.valid.remove(pair)

    def nominate(self, pair: CandidatePair, *, exclusive: bool = False) -> list[CandidatePair]:
        """Mark a valid pair nominated (§8.1.2): drop the Frozen and Waiting pairs of
        its component and return the In-Progress ones of lower priority, whose
        retransmissions the agent stops.

        `exclusive` clears the other nominations of the component, so that the
        latest one is selected: an RFC 8445 peer nominates one pair at a time
        and nominates another only when it gave up on the first, while an
        aggressive (RFC 5245) peer nominates many and the best one counts.
        """
        component = pair.component
        if exclusive:
            for other in self.valid:
                if other.component == component:
                    other.nominated = False
        pair.nominated = True
        for other in list(self.pairs):
            if (
                other.component == component
                and other.state in (PairState.FROZEN, PairState.WAITING)
                and not other.nominate_on_success  # the peer nominated it: keep it
            ):
                self._remove(other)
        return [
            other
            for other in self.pairs
            if other.component == component
            and other.state is PairState.IN_PROGRESS
            and not other.nominate_on_success
            and other.priority < pair.priority
        ]

    def selected(self, component: int) -> CandidatePair | None:
        """The highest-priority nominated valid pair (§8.1.1; several only when the
        peer nominates aggressively)."""
        return next((p for p in self.valid if p.component == component and p.nominated), None)

    def best_valid(self, component: int) -> CandidatePair | None:
        return next((p for p in self.valid if p.component == component), None)

    def pending(self, component: int) -> list[CandidatePair]:
        """Pairs of `component` that may still succeed."""
        return [p for p in self.pairs if p.component == component and p.state in _ACTIVE]

    def all_nominated(self) -> bool:
        return all(self.selected(c) is not None for c in self.components)

    def exhausted(self) -> bool:
        """§8.1.2: nothing left to check and some component has no valid pair."""
        if any(p.state in _ACTIVE for p in self.pairs) or self.has_work():
            return False
        return any(self.best_valid(c) is None for c in self.components)

    def apply(self, event: ChecklistInput) -> ChecklistState:
        """Move the checklist by `CHECKLIST_TRANSITIONS`."""
        self.state = next_checklist_state(self.state, event)
        return self.state

    def set_role(self, *, controlling: bool) -> None:
        """Recompute every priority after a role switch and re-sort (§7.3.1.1)."""
        self.controlling = controlling
        for pair in (*self.pairs, *self.valid):
            pair.set_role(controlling=controlling)
        self.pairs.sort(key=lambda p: p.priority, reverse=True)
        self.valid.sort(key=lambda p: p.priority, reverse=True)
