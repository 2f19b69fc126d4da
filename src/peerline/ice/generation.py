"""What the agent keeps per ICE session and per outstanding check (internal to
`peerline.ice.agent`, split from it to keep each file small).

A *generation* is one ICE session between two credential sets (RFC 8445 §9: a
restart starts a new one); a *pending check* is one Binding request in flight,
with what it claimed, so that its answer can be judged (RFC 8445 §7.2.5). Also
the two pure steps of making them: a checked local candidate, a new check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from peerline.ice.candidate import (
    Candidate,
    CandidateType,
    TransportProtocol,
    compute_foundation,
    peer_reflexive_priority,
)
from peerline.ice.checklist import CandidatePair, Checklist, LocalCandidate
from peerline.ice.config import Role
from peerline.ice.errors import IceUsageError
from peerline.ice.messages import build_check
from peerline.ice.sdp import Credentials
from peerline.stun import (
    ClientTransaction,
    TransactionConfig,
    Transport,
    TransportAddress,
    short_term_key,
)


class CheckKind(Enum):
    CONNECTIVITY = "connectivity"
    CONSENT = "consent"


class Generation:
    """One ICE session: a credential set on each side, its candidates and checklist."""

    def __init__(
        self,
        number: int,
        local: Credentials,
        gathered: list[LocalCandidate],
        checklist: Checklist,
    ) -> None:
        self.number = number
        self.local = local
        self.remote: Credentials | None = None
        self.remote_options: frozenset[str] = frozenset()
        self.local_candidates = list(gathered)
        self.remote_candidates: list[Candidate] = []
        self.learned = 0
        """How many of `remote_candidates` were learned from checks (peer-reflexive)."""
        self.local_done = False
        self.remote_done = False
        self.unsignalled: set[LocalCandidate] = set()
        """Local candidates an extension added: checked, never signalled."""
        self.checklist = checklist
        self.first_valid_at: dict[int, float] = {}
        self.first_rtt: dict[int, float] = {}
        """Per component, the round trip of the check that made its first valid pair."""
        self.nominating: dict[int, CandidatePair] = {}
        self.nomination_tries: dict[int, int] = {}

    def nomination_due(
        self,
        components: Iterable[int],
        *,
        wait: float,
        hold_relayed_until: float | None,
        now: float,
        ta: float,
    ) -> dict[int, float]:
        """Per component with a valid pair and no nomination selected or under way:
        when to nominate its best valid pair.

        At once when no better pair is still hopeful, and never later than `wait`
        after the first valid pair; a relayed pair not before `hold_relayed_until`.
        A relayed pair waits the whole `wait` for any direct pair still pending
        (a lost first check must not put a call on the relay for good). A direct
        pair waits for a better one only until that one's check has been out for
        twice the round trip the first valid pair took, plus two pacing intervals:
        across NATs the host pairs checked first never answer, and waiting the
        whole `wait` for them made every direct path half a second slower.
        """
        checklist = self.checklist
        due = {}
        for component in sorted(components):
            best = checklist.best_valid(component)
            if best is None or component in self.nominating:
                continue
            if checklist.selected(component) is not None:
                continue
            first = self.first_valid_at.get(component, now)
            latest = first + wait
            grace = 2 * self.first_rtt.get(component, wait) + 2 * ta
            better = [p for p in checklist.pending(component) if p.priority > best.priority]
            relayed = CandidateType.RELAYED in (best.local.type, best.remote.type)
            direct_hope = relayed and any(
                CandidateType.RELAYED not in (p.local.type, p.remote.type) for p in better
            )
            if direct_hope or any(p.checked_at is None for p in better):
                when = latest  # a direct pair, or one not checked yet: give it the time
            elif better:
                when = min(latest, max(p.checked_at or first for p in better) + grace)
                when = max(when, first)
            else:
                when = first
            if hold_relayed_until is not None and relayed:
                when = max(when, hold_relayed_until)
            due[component] = when
        return due

    def local_at(self, base: TransportAddress) -> LocalCandidate | None:
        """The host or relayed candidate whose address is this base."""
        return self.local_matching(base, base)

    def local_matching(
        self, address: TransportAddress, base: TransportAddress
    ) -> LocalCandidate | None:
        """The local candidate at `address` sending from `base`."""
        for local in self.local_candidates:
            if local.candidate.address == address and local.base == base:
                return local
        return None

    def peer_reflexive_remote(
        self, source: TransportAddress, component: int, priority: int
    ) -> Candidate:
        """RFC 8445 §7.3.1.3: a request from an unknown address is a peer-reflexive
        candidate of the peer, with the priority the request carried (not yet
        remembered: the caller decides whether it keeps it)."""
        taken = {c.foundation for c in self.remote_candidates}
        foundation = next(f"prflx{n}" for n in range(len(taken) + 1) if f"prflx{n}" not in taken)
        return Candidate(
            foundation=foundation,
            component=component,
            priority=priority,
            address=source,
            type=CandidateType.PEER_REFLEXIVE,
        )

    def pair_for_check(
        self, local: LocalCandidate, source: TransportAddress, priority: int, *, nominated: bool
    ) -> tuple[CandidatePair | None, Candidate | None]:
        """§7.3.1.4: a check from `source` on a pair we do not list. Returns the
        triggered pair (None when the list has no room for it) and the remote
        candidate learned on the way (§7.3.1.3), if any. At most the checklist's
        `learning_limit` are learned, except from a nomination (`nominated`):
        the peer has a valid pair there."""
        component = local.candidate.component
        remote = self.remote_at(source, component)
        learned = None
        if remote is None:
            if self.learned >= self.checklist.learning_limit and not nominated:
                return None, None
            remote = learned = self.peer_reflexive_remote(source, component, priority)
        pair = self.checklist.add_triggered_pair(local, remote)
        if pair is None:
            return None, None
        if learned is not None:
            self.learned += 1
            self.remote_candidates.append(learned)
        return pair, learned

    def learn_local(
        self, mapped: TransportAddress, pair: CandidatePair, priority: int
    ) -> LocalCandidate:
        """RFC 8445 §7.2.5.3.1: an answer mapped us to an address we did not know:
        a local peer-reflexive candidate at `pair`'s base, with the check's PRIORITY."""
        prflx = Candidate(
            foundation=compute_foundation(CandidateType.PEER_REFLEXIVE, pair.base.ip),
            component=pair.component,
            priority=priority,
            address=mapped,
            type=CandidateType.PEER_REFLEXIVE,
            related_address=pair.base,
        )
        local = LocalCandidate(prflx, pair.base)
        self.local_candidates.append(local)
        return local

    def remote_at(self, address: TransportAddress, component: int) -> Candidate | None:
        for remote in self.remote_candidates:
            if remote.address == address and remote.component == component:
                return remote
        return None


@dataclass(slots=True, eq=False)
class PendingCheck:
    """One outstanding Binding request and what it claimed, to judge its answer."""

    kind: CheckKind
    generation: Generation
    pair: CandidatePair
    transaction: ClientTransaction
    key: bytes
    role: Role
    priority: int
    use_candidate: bool
    last_sent_at: float
    """When the request last went out (from its creation until it first does).
    An answer cannot say which transmission it answers; the latest is the
    likely one (the earlier ones were lost), so consent counts from it: exact
    without retransmissions, and a check that needed 30 s of retransmissions
    does not select a pair with no consent left."""
    cancelled: bool = False
    """Superseded by a triggered check (RFC 8445 §7.3.1.4) or a nomination: no
    retransmissions, a timeout means nothing, only a success still counts."""


def local_candidate(
    candidate: Candidate, base: tuple[str, int] | None, components: frozenset[int]
) -> LocalCandidate:
    """A candidate the adapter gathered, checked, with its base: the address itself
    for host and relayed candidates, the related address for server-reflexive ones."""
    if candidate.transport is not TransportProtocol.UDP or not candidate.is_resolved:
        raise IceUsageError("local candidates are UDP with an IP address")
    if candidate.component not in components:
        raise IceUsageError(f"no component {candidate.component}")
    if candidate.type is CandidateType.PEER_REFLEXIVE:
        raise IceUsageError("peer-reflexive candidates are learned, not added")
    if base is None:
        if candidate.type is CandidateType.SERVER_REFLEXIVE:
            if candidate.related_address is None:
                raise IceUsageError("a server-reflexive candidate needs its base")
            base = candidate.related_address
        else:
            base = candidate.address
    return LocalCandidate(candidate, TransportAddress(*base))


def start_check(
    kind: CheckKind,
    generation: Generation,
    pair: CandidatePair,
    *,
    role: Role,
    tie_breaker: int,
    use_candidate: bool,
    timers: TransactionConfig,
    now: float,
) -> PendingCheck:
    """A Binding request on `pair` (RFC 8445 §7.1): USERNAME `peer:ours`, the
    PRIORITY a peer-reflexive candidate of ours would have, signed with the
    peer's password; its transaction, ready to send."""
    remote = generation.remote
    if remote is None:
        raise IceUsageError("no checks before the peer's credentials")
    key = short_term_key(remote.pwd)
    priority = peer_reflexive_priority(pair.local.priority)
    request = build_check(
        username=f"{remote.ufrag}:{generation.local.ufrag}",
        key=key,
        priority=priority,
        role=role,
        tie_breaker=tie_breaker,
        use_candidate=use_candidate,
    )
    transaction = ClientTransaction(request, transport=Transport.UDP, now=now, config=timers)
    return PendingCheck(
        kind=kind,
        generation=generation,
        pair=pair,
        transaction=transaction,
        key=key,
        role=role,
        priority=priority,
        use_candidate=use_candidate,
        last_sent_at=now,
    )
