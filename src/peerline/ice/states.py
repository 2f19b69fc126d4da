"""Every state transition of the checklist, in one place (RFC 8445 §6.1.2.6, §6.1.3,
§7.2.5, §7.3.1.4, §8.1.2).

The tables are plain dicts of (state, input) → state, as h11 and h2 keep theirs:
code elsewhere only says what happened (an input); this file says what that
does. A pair missing from a table is an error (`InvalidTransition`), never a
silent no-op, and the tests sweep every pair.
"""

from __future__ import annotations

from enum import Enum

from peerline.ice.errors import InvalidTransition


class PairState(Enum):
    """The state of one candidate pair (RFC 8445 §6.1.2.6)."""

    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PairInput(Enum):
    """What can happen to a pair."""

    UNFREEZE = "unfreeze"
    """A pair of the same foundation succeeded (§7.2.5.3.3), or pacing found no
    Waiting pair and this foundation has none in flight (§6.1.4.2)."""

    TRIGGER = "trigger"
    """The peer checked this pair (§7.3.1.4), or the controlling agent queued it
    to repeat its check with USE-CANDIDATE (§8.1.1)."""

    START = "start"
    """Pacing picked the pair: a Binding request goes out (§6.1.4.2)."""

    SUCCESS = "success"
    """A valid, symmetric success response arrived (§7.2.5.3)."""

    FAILURE = "failure"
    """The check timed out, got an unrecoverable error, or was not symmetric (§7.2.5.2)."""

    ROLE_CONFLICT = "role-conflict"
    """A 487 answer: the agent switched role and checks the pair again (§7.2.5.1)."""


_S = PairState
_I = PairInput

PAIR_TRANSITIONS: dict[tuple[PairState, PairInput], PairState] = {
    (_S.FROZEN, _I.UNFREEZE): _S.WAITING,
    (_S.FROZEN, _I.TRIGGER): _S.WAITING,
    (_S.WAITING, _I.TRIGGER): _S.WAITING,
    (_S.WAITING, _I.START): _S.IN_PROGRESS,
    # the answer to a check cancelled by a triggered check still counts (§7.3.1.4)
    (_S.WAITING, _I.SUCCESS): _S.SUCCEEDED,
    (_S.WAITING, _I.ROLE_CONFLICT): _S.WAITING,
    # a triggered check cancels the one in flight and queues a new one (§7.3.1.4)
    (_S.IN_PROGRESS, _I.TRIGGER): _S.WAITING,
    (_S.IN_PROGRESS, _I.SUCCESS): _S.SUCCEEDED,
    (_S.IN_PROGRESS, _I.FAILURE): _S.FAILED,
    (_S.IN_PROGRESS, _I.ROLE_CONFLICT): _S.WAITING,
    # a succeeded pair is checked again only to nominate it (§8.1.1)
    (_S.SUCCEEDED, _I.TRIGGER): _S.SUCCEEDED,
    (_S.SUCCEEDED, _I.START): _S.SUCCEEDED,
    (_S.SUCCEEDED, _I.SUCCESS): _S.SUCCEEDED,
    (_S.SUCCEEDED, _I.FAILURE): _S.FAILED,
    (_S.SUCCEEDED, _I.ROLE_CONFLICT): _S.SUCCEEDED,
    # the peer's check revives a failed pair (§7.3.1.4); so does a late answer
    (_S.FAILED, _I.TRIGGER): _S.WAITING,
    (_S.FAILED, _I.SUCCESS): _S.SUCCEEDED,
}


class ChecklistState(Enum):
    """The state of a checklist (RFC 8445 §6.1.2.1)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ChecklistInput(Enum):
    """What can happen to a checklist."""

    ALL_NOMINATED = "all-nominated"
    """Every component has a nominated pair (§8.1.2); again when an aggressive
    peer nominates a better one."""

    EXHAUSTED = "exhausted"
    """Every pair has finished, some component has no valid pair, and neither
    side will trickle more candidates (§8.1.2, RFC 8838 §8)."""


_C = ChecklistState
_CI = ChecklistInput

CHECKLIST_TRANSITIONS: dict[tuple[ChecklistState, ChecklistInput], ChecklistState] = {
    (_C.RUNNING, _CI.ALL_NOMINATED): _C.COMPLETED,
    (_C.RUNNING, _CI.EXHAUSTED): _C.FAILED,
    (_C.COMPLETED, _CI.ALL_NOMINATED): _C.COMPLETED,
}


def next_pair_state(state: PairState, event: PairInput) -> PairState:
    """The state after `event`, or `InvalidTransition` when the table has no entry."""
    try:
        return PAIR_TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransition(state, event) from None


def next_checklist_state(state: ChecklistState, event: ChecklistInput) -> ChecklistState:
    """The state after `event`, or `InvalidTransition` when the table has no entry."""
    try:
        return CHECKLIST_TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransition(state, event) from None
