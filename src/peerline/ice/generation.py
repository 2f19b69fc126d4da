"""What the agent keeps per ICE session and per outstanding check (internal to
`peerline.ice.agent`, split from it to keep each file small).

A *generation* is one ICE session between two credential sets (RFC 8445 §9: a
restart starts a new one); a *pending check* is one Binding request in flight,
with what it claimed, so that its answer can be judged (RFC 8445 §7.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from peerline.ice.candidate import Candidate, CandidateType, compute_foundation
from peerline.ice.checklist import CandidatePair, Checklist, LocalCandidate
from peerline.ice.config import Role
from peerline.ice.sdp import Credentials
from peerline.stun import ClientTransaction, TransportAddress


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
        self.nominating: dict[int, CandidatePair] = {}

    def local_at(self, base: TransportAddress) -> LocalCandidate | None:
        """The host or relayed candidate whose address is this base."""
        for local in self.local_candidates:
            if local.base == base and local.candidate.address == base:
                return local
        return None

    def local_matching(
        self, address: TransportAddress, base: TransportAddress
    ) -> LocalCandidate | None:
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
    started_at: float
    last_sent_at: float | None = None
    """When the request last went out. An answer cannot say which transmission
    it answers; the latest is the likely one (the earlier ones were lost), so
    consent counts from it: exact without retransmissions, and a check that
    needed 30 s of retransmissions does not select a pair with no consent left."""
    cancelled: bool = False
    """Superseded by a triggered check (RFC 8445 §7.3.1.4) or a nomination: no
    retransmissions, a timeout means nothing, only a success still counts."""
