"""What the agent tells its caller, one `next_event()` at a time (h11/aioquic style).

Frozen, slotted, keyword-only dataclasses holding only immutable values, so an
event can be kept, compared and logged without it changing underneath.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.ice.candidate import Candidate
from peerline.ice.checklist import PairInfo
from peerline.ice.config import Role
from peerline.ice.sdp import Credentials


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidatePairSucceeded:
    """A check succeeded and produced this valid pair (RFC 8445 §7.2.5.3.2)."""

    pair: PairInfo
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPeerReflexiveCandidate:
    """A candidate learned from a check (RFC 8445 §7.2.5.3.1 local, §7.3.1.3 remote).

    A local one is the address a NAT gave us toward this peer (worth logging: it
    means the NAT maps per destination); it is never signalled.
    """

    candidate: Candidate
    local: bool
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedPairChanged:
    """Application data for `pair.component` now goes over `pair`: the first
    nomination, a better one from an aggressive peer, or the switch after an ICE
    restart."""

    pair: PairInfo
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """Every component of this generation has a nominated pair (RFC 8445 §8.1.2)."""

    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """This generation's checks are over and some component has no valid pair, with
    both sides done trickling. An older selected pair, if any, is still in use."""

    generation: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentLost:
    """No answer to consent checks for the consent timeout (RFC 7675 §5.1): stop
    sending on this pair. It is no longer selected."""

    pair: PairInfo
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged:
    """A role conflict made us switch role (RFC 8445 §7.3.1.1, §7.2.5.1)."""

    role: Role


@dataclass(frozen=True, slots=True, kw_only=True)
class IceRestarted:
    """A new generation began (RFC 8445 §9), with these local credentials; the
    caller signals them (and the candidates) to the peer. `by_peer` when the
    peer's new credentials started it."""

    generation: int
    credentials: Credentials
    by_peer: bool


Event = (
    CandidatePairSucceeded
    | NewPeerReflexiveCandidate
    | SelectedPairChanged
    | Completed
    | Failed
    | ConsentLost
    | RoleChanged
    | IceRestarted
)
