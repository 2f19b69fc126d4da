"""The ICE agent: RFC 8445 full agent, RFC 8838 trickle, RFC 7675 consent, without I/O.

Three kinds of input, as in aioquic: API calls (candidates, credentials,
restart), `receive_datagram(data, base, source, now)` and `handle_timer(now)`.
Three kinds of output: `datagrams_to_send(now)` as (data, base, destination),
`get_timer()`, and `next_event()`. The agent never reads a clock and never
touches a socket.

The base of a datagram is the local transport address it leaves from or arrived
at: a socket's address for host candidates, the relayed address for relayed
ones. The adapter maps each base to what really sends (a UDP socket, a TURN
allocation's channel), so relays need nothing more from this core.

Each ICE session between two credential sets is a *generation*. An ICE restart
(RFC 8445 §9) starts a new one; the newest runs the checks, and an older one
lives on, answering the peer's checks and keeping consent on its selected pair,
until the new one has nominated a pair for every component (and then answers
for one consent timeout more, while the peer may still be switching).

What the peer can make us keep is bounded: pairs by `IceConfig.max_pairs` (the
triggered ones too), peer-reflexive candidates learned from checks by half of
it, revivals of a failed pair by `MAX_REVIVALS`; garbage and checks with wrong
credentials are answered (or dropped) and leave no state.

Seam for extensions negotiated by ice-options (the birthday technique for an
endpoint-independent NAT facing a symmetric one, later): `negotiated_options`
tells whether both sides advertised the token; the extension then adds extra
local candidates (more ports) with `add_local_candidate(..., signalled=False)`
and guessed peer addresses with `add_remote_candidate(..., signalled=False)`.
Both are allowed after end-of-candidates (but not once the checklist failed),
are never signalled, and their pairs start Waiting (no foundation freezing).
`max_pairs=N` on either call raises this generation's checklist limit to N
(never lowers it); without it, pairs beyond `IceConfig.max_pairs` are trimmed,
lowest priority first, and the call returns how many it kept. Give guesses a
priority below every real candidate so they never push real pairs out. What
works surfaces as ordinary valid pairs and events. An extension that sends
its own checks signs them as ours (`tie_breaker`, `role`), and one still
trying for a direct pair may keep the controlling agent from nominating a
relayed pair meanwhile with `hold_relayed_nomination(until)` (bounded by
`until`; None lifts it early).
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import deque
from enum import Enum
from typing import NamedTuple

from peerline.ice.candidate import (
    Candidate,
    CandidateType,
    TransportProtocol,
)
from peerline.ice.checklist import (
    MAX_REVIVALS,
    CandidatePair,
    Checklist,
    LocalCandidate,
    PairInfo,
)
from peerline.ice.config import IceConfig, Nomination, Role
from peerline.ice.consent import Consent, consent_transaction
from peerline.ice.errors import IceUsageError
from peerline.ice.events import (
    CandidatePairSucceeded,
    Completed,
    ConsentLost,
    Event,
    Failed,
    IceRestarted,
    NewPeerReflexiveCandidate,
    RoleChanged,
    SelectedPairChanged,
)
from peerline.ice.generation import (
    CheckKind,
    Generation,
    PendingCheck,
    local_candidate,
    start_check,
)
from peerline.ice.messages import (
    CheckRejected,
    answer_mapped,
    error_response,
    is_role_conflict,
    keepalive_indication,
    read_check,
    success_response,
)
from peerline.ice.sdp import Credentials
from peerline.ice.states import ChecklistInput, ChecklistState, PairInput, PairState
from peerline.stun import (
    AttributeType,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageClass,
    Method,
    ResponseReceived,
    TransactionConfig,
    TransactionResult,
    TransportAddress,
    is_stun,
    parse,
    verify_fingerprint,
    verify_message_integrity,
)

logger = logging.getLogger(__name__)


NOMINATION_ATTEMPTS = 3
"""How many times the controlling agent sends a nomination that goes unanswered."""


class Disposition(Enum):
    """What `receive_datagram` did with a datagram."""

    CONSUMED = "consumed"
    """An ICE STUN message: handled here; do not pass it on."""

    NOT_ICE = "not-ice"
    """Not ours (application data, a STUN server's answer to a gathering request,
    TURN traffic): pass it on untouched."""


class Transmit(NamedTuple):
    """One datagram to send: its bytes, the base to send from, the destination."""

    data: bytes
    base: TransportAddress
    destination: TransportAddress


class Agent:
    """A full ICE agent for one data stream with `components` components.

    `role` is decided by the using protocol (the offerer controls, RFC 8839
    §3.1); `credentials` and `tie_breaker` are random unless given (tests give
    them); `rng` jitters the consent interval.
    """

    def __init__(
        self,
        *,
        role: Role,
        config: IceConfig | None = None,
        components: int = 1,
        credentials: Credentials | None = None,
        tie_breaker: int | None = None,
        rng: random.Random | None = None,
        name: str = "ice",
    ) -> None:
        if not 1 <= components <= 256:
            raise IceUsageError("components must be 1-256")
        self._config = config or IceConfig()
        self._components = frozenset(range(1, components + 1))
        self._role = role
        self._tie_breaker = secrets.randbits(64) if tie_breaker is None else tie_breaker
        self._rng = rng or random.Random()
        self._log = logging.LoggerAdapter(logger, {"ice": name})
        self._gathered: list[LocalCandidate] = []
        self._generations = [self._generation(0, credentials or Credentials.generate())]
        self._checks: dict[bytes, PendingCheck] = {}
        self._retired: dict[Generation, float] = {}
        """Generations replaced by a restart, answering until the time given."""
        self._consent = Consent(self._config, self._rng)
        self._outbox: list[Transmit] = []
        self._events: deque[Event] = deque()
        self._last_check_at: float | None = None
        self._now = 0.0
        self._closed = False
        self._relay_hold: float | None = None
        self._peer_checked_at: float | None = None

    def _generation(self, number: int, local: Credentials) -> Generation:
        checklist = Checklist(
            self._components,
            controlling=self._role is Role.CONTROLLING,
            max_pairs=self._config.max_pairs,
        )
        return Generation(number, local, self._gathered, checklist)

    @property
    def _current(self) -> Generation:
        return self._generations[-1]

    # -- what the caller reads ----------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def config(self) -> IceConfig:
        """The configuration the agent was built with (its ice-options go in the SDP)."""
        return self._config

    @property
    def generation(self) -> int:
        """The number of the newest generation (0, then one more per restart)."""
        return self._current.number

    @property
    def local_credentials(self) -> Credentials:
        """The newest generation's ufrag and password, to signal to the peer."""
        return self._current.local

    @property
    def local_candidates(self) -> list[Candidate]:
        """The candidates to signal (peer-reflexive ones are learned, never signalled)."""
        generation = self._current
        return [
            lc.candidate
            for lc in generation.local_candidates
            if lc.candidate.type is not CandidateType.PEER_REFLEXIVE
            and lc not in generation.unsignalled
        ]

    @property
    def remote_candidates(self) -> list[Candidate]:
        """The peer's candidates in the newest generation: signalled ones and the
        peer-reflexive ones learned from its checks."""
        return list(self._current.remote_candidates)

    @property
    def tie_breaker(self) -> int:
        """The value our checks carry in ICE-CONTROLLING/ICE-CONTROLLED (RFC 8445
        §7.1.1), for an extension's own checks, which must claim what ours claim."""
        return self._tie_breaker

    @property
    def peer_checked_at(self) -> float | None:
        """When the newest generation first answered an authenticated check of the
        peer (None: not yet). Only our description gives the peer our password,
        so from then on the peer is known to have it."""
        return self._peer_checked_at

    def hold_relayed_nomination(self, until: float | None) -> None:
        """Seam for extensions: as controlling agent (regular nomination), nominate
        no relayed pair before `until`, so that a direct pair an extension is still
        trying for can win; a direct valid pair is nominated as usual. None lifts
        the hold at once."""
        self._relay_hold = until

    @property
    def negotiated_options(self) -> frozenset[str]:
        """ice-options both sides advertised in the newest generation (RFC 8839 §5.6)."""
        return frozenset(self._config.ice_options) & self._current.remote_options

    @property
    def checklist_state(self) -> ChecklistState:
        return self._current.checklist.state

    def selected_pair(self, component: int = 1) -> PairInfo | None:
        """Where application data for `component` goes now, or None (not yet
        nominated, or consent lost)."""
        selection = self._consent.selected.get(component)
        return None if selection is None else selection.pair.info()

    def pairs(self) -> list[PairInfo]:
        """The newest generation's checklist, best first (for diagnostics)."""
        return [pair.info() for pair in self._current.checklist.pairs]

    def selected_types(self, component: int = 1) -> tuple[CandidateType, CandidateType] | None:
        """The (local, remote) candidate types of the selected pair, for reports of
        which path was chosen (host, srflx, prflx or relay on each side)."""
        pair = self.selected_pair(component)
        return None if pair is None else (pair.local.type, pair.remote.type)

    def next_event(self) -> Event | None:
        """The oldest event not yet returned, or None."""
        return self._events.popleft() if self._events else None

    # -- candidates and credentials (RFC 8838 trickle) ------------------------------------

    def add_local_candidate(
        self,
        candidate: Candidate,
        *,
        base: tuple[str, int] | None = None,
        signalled: bool = True,
        max_pairs: int | None = None,
    ) -> int:
        """A gathered candidate. `base` defaults to the address itself for host and
        relayed candidates and to the related address for server-reflexive ones.

        `signalled=False` is for extensions (see the module docstring): such a
        candidate may come after end-of-candidates, is not in `local_candidates`
        (it is never sent to the peer) and does not carry over to a restart.
        `max_pairs` raises this generation's checklist limit (never lowers it)
        so that many extra candidates are not trimmed away at once. Returns how
        many new pairs were formed and kept.
        """
        generation = self._current
        if generation.local_done and signalled:
            raise IceUsageError("local end-of-candidates was already signalled")
        if max_pairs is not None and max_pairs < 1:
            raise IceUsageError("max_pairs must be >= 1")
        local = local_candidate(candidate, base, self._components)
        if local in generation.local_candidates:
            return 0
        if signalled:
            self._gathered.append(local)
        else:
            generation.unsignalled.add(local)
        generation.local_candidates.append(local)
        added = generation.checklist.add_pairs(
            [local],
            generation.remote_candidates,
            all_locals=generation.local_candidates,
            max_pairs=max_pairs,
            waiting=not signalled,
        )
        return len(added)

    def end_of_local_candidates(self) -> None:
        """Gathering is over for the newest generation (RFC 8838 §13)."""
        self._current.local_done = True
        self._check_failed()

    def set_remote_credentials(
        self, ufrag: str, pwd: str, *, options: tuple[str, ...] = ()
    ) -> None:
        """The peer's ice-ufrag, ice-pwd and ice-options.

        New credentials while the newest generation already has others mean the
        peer restarted ICE (RFC 8445 §9): we restart too, and `local_credentials`
        (and an `IceRestarted` event) give what to answer with.
        """
        remote = Credentials(ufrag, pwd)
        generation = self._current
        if generation.remote is not None and generation.remote != remote:
            generation = self._start_generation(by_peer=True)
        generation.remote = remote
        generation.remote_options = frozenset(options)

    def add_remote_candidate(
        self,
        candidate: Candidate,
        *,
        ufrag: str | None = None,
        signalled: bool = True,
        max_pairs: int | None = None,
    ) -> int:
        """A candidate from the peer; `ufrag` names its generation (RFC 8838 §15.1),
        the newest when None. Candidates this agent cannot use (TCP, unresolved
        names) are ignored: they are legitimate in an offer.

        A signalled candidate at the address of one learned from a check replaces
        the peer-reflexive one, so that the pair's priority is the one the peer
        computes and reports name the real type. `signalled=False` marks a guess
        by an extension (allowed after end-of-candidates); `max_pairs` as for
        `add_local_candidate`. Returns how many new pairs were formed and kept.
        """
        generation = self._by_remote_ufrag(ufrag)
        if generation.remote_done and signalled:
            raise IceUsageError("the peer already signalled end-of-candidates")
        if max_pairs is not None and max_pairs < 1:
            raise IceUsageError("max_pairs must be >= 1")
        if candidate.transport is not TransportProtocol.UDP or not candidate.is_resolved:
            self._log.debug("ignoring unusable remote candidate %s", candidate.to_sdp())
            return 0
        known = generation.remote_at(candidate.address, candidate.component)
        if known is not None:
            learned = known.type is CandidateType.PEER_REFLEXIVE
            if learned and signalled and candidate.type is not CandidateType.PEER_REFLEXIVE:
                index = generation.remote_candidates.index(known)
                generation.remote_candidates[index] = candidate
                generation.checklist.replace_remote(known, candidate)
            return 0
        generation.remote_candidates.append(candidate)
        added = generation.checklist.add_pairs(
            generation.local_candidates, [candidate], max_pairs=max_pairs, waiting=not signalled
        )
        return len(added)

    def end_of_remote_candidates(self, *, ufrag: str | None = None) -> None:
        """The peer's end-of-candidates (RFC 8838 §13)."""
        self._by_remote_ufrag(ufrag).remote_done = True
        self._check_failed()

    def _by_remote_ufrag(self, ufrag: str | None) -> Generation:
        if ufrag is None:
            return self._current
        for generation in reversed(self._generations):
            if generation.remote is not None and generation.remote.ufrag == ufrag:
                return generation
        raise IceUsageError(f"no ICE generation with remote ufrag {ufrag!r}")

    def restart(self) -> Credentials:
        """Start an ICE restart (RFC 8445 §9): new local credentials to signal with
        the candidates; the current selected pair stays in use until the new
        generation nominates one."""
        return self._start_generation(by_peer=False).local

    def _start_generation(self, *, by_peer: bool) -> Generation:
        previous = self._current
        for tid, check in list(self._checks.items()):
            if check.generation is previous and check.kind is CheckKind.CONNECTIVITY:
                del self._checks[tid]
        owners = {selection.generation for selection in self._consent.selected.values()}
        self._generations = [g for g in self._generations if g in owners]
        generation = self._generation(previous.number + 1, Credentials.generate())
        self._generations.append(generation)
        self._peer_checked_at = None
        self._events.append(
            IceRestarted(
                generation=generation.number, credentials=generation.local, by_peer=by_peer
            )
        )
        return generation

    def close(self) -> None:
        """Stop: no more checks, consent or timers; every datagram is passed on."""
        self._closed = True
        self._checks.clear()
        self._consent.selected.clear()
        self._outbox.clear()
        self._retired.clear()

    # -- datagrams in ---------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, base: tuple[str, int], source: tuple[str, int], now: float
    ) -> Disposition:
        """Offer a datagram that arrived at `base` from `source`.

        Binding requests, indications and answers to our own checks are ICE's;
        anything else is `NOT_ICE`, to be passed on unchanged.
        """
        self._now = now
        if self._closed or not is_stun(data):
            return Disposition.NOT_ICE
        try:
            message = parse(data)
        except MalformedMessage:
            return Disposition.NOT_ICE
        if message.method != Method.BINDING:
            return Disposition.NOT_ICE
        if AttributeType.FINGERPRINT in message and not verify_fingerprint(message):
            return Disposition.NOT_ICE  # RFC 8489 §7.3: then it is not STUN at all
        here, there = TransportAddress(*base), TransportAddress(*source)
        if message.message_class is MessageClass.REQUEST:
            self._on_request(message, here, there)
        elif message.message_class is not MessageClass.INDICATION:  # keepalives: nothing to do
            check = self._checks.get(message.transaction_id)
            if check is None:
                return Disposition.NOT_ICE
            self._on_answer(check, message, here, there, now)
        return Disposition.CONSUMED

    def _password_for(self, local_ufrag: str, remote_ufrag: str) -> str | None:
        generation = self._by_local_ufrag(local_ufrag)
        if generation is None:
            return None
        if generation.remote is not None and generation.remote.ufrag != remote_ufrag:
            return None
        return generation.local.pwd

    def _by_local_ufrag(self, ufrag: str) -> Generation | None:
        found = next((g for g in self._generations if g.local.ufrag == ufrag), None)
        if found is None:
            for old, until in list(self._retired.items()):
                if until <= self._now:
                    del self._retired[old]
                elif old.local.ufrag == ufrag:
                    found = old
        return found

    def _on_request(
        self, message: Message, base: TransportAddress, source: TransportAddress
    ) -> None:
        """RFC 8445 §7.3.1: authenticate, settle role conflicts, answer, learn a
        peer-reflexive candidate, queue a triggered check, note a nomination."""
        try:
            request, key = read_check(message, self._password_for)
        except CheckRejected as rejected:
            reply = error_response(
                message, rejected.error_code, key=rejected.key, unknown=rejected.unknown
            )
            self._outbox.append(Transmit(reply, base, source))
            return
        if self._has_role_conflict(request.ice_controlling, request.ice_controlled):
            reply = error_response(message, ErrorCode.ROLE_CONFLICT, key=key)
            self._outbox.append(Transmit(reply, base, source))
            return
        success = Transmit(success_response(message, source, key), base, source)
        generation = self._by_local_ufrag(request.local_ufrag)
        if generation is self._current and self._peer_checked_at is None:
            self._peer_checked_at = self._now
        local = None if generation is None else generation.local_at(base)
        if generation is None or local is None:
            # Not answered: no candidate of ours is there (an extra socket the birthday
            # technique did not admit). A success would give the peer a pair we cannot
            # use, and a controlling peer would nominate it.
            self._log.debug("check at %s matches no local candidate: not answered", base)
            return
        component = local.candidate.component
        checklist = generation.checklist
        use_candidate = request.use_candidate and self._role is Role.CONTROLLED
        if generation is not self._current or checklist.state is ChecklistState.FAILED:
            self._outbox.append(success)
            return  # an old or failed generation only answers
        aggressive = self._role is Role.CONTROLLING and (
            self._config.nomination is Nomination.AGGRESSIVE
        )
        if checklist.state is ChecklistState.COMPLETED and not (use_candidate or aggressive):
            self._outbox.append(success)
            return  # an aggressive controller goes on: its next success nominates
        pair = checklist.find(base, source, component)
        if pair is None:
            pair, learned = generation.pair_for_check(
                local, source, request.priority, nominated=use_candidate
            )
            if pair is None:
                self._log.debug("no room for a pair for the check from %s", source)
                if self._role is Role.CONTROLLING:
                    self._outbox.append(success)  # harmless: we never nominate it
                return  # controlled: unanswered, so the peer cannot nominate it
            if learned is not None:
                self._events.append(
                    NewPeerReflexiveCandidate(
                        candidate=learned, local=False, generation=generation.number
                    )
                )
        self._outbox.append(success)
        if pair.state is PairState.FAILED and pair.revivals >= MAX_REVIVALS and not use_candidate:
            return  # answered, not revived again (see MAX_REVIVALS)
        if pair.state is not PairState.SUCCEEDED:
            if pair.state is PairState.IN_PROGRESS:
                self._cancel_checks(pair)
            checklist.trigger(pair)
        if use_candidate:  # RFC 8445 §7.3.1.5
            if pair.state is PairState.SUCCEEDED and pair.valid_pair is not None:
                # the nomination itself came over this pair, signed: fresh proof
                pair.valid_pair.confirmed_at = self._now
                self._nominate(generation, pair.valid_pair)
            else:
                pair.nominate_on_success = True

    def _has_role_conflict(self, controlling: int | None, controlled: int | None) -> bool:
        """RFC 8445 §7.3.1.1: the larger tie-breaker keeps controlling. True when we
        keep our role and must answer 487; a switch happens here.

        Equal tie-breakers would make both sides answer 487 and switch, then
        switch back, for ever: we draw a new one first (RFC 8445 is silent).
        """
        theirs = controlling if self._role is Role.CONTROLLING else controlled
        while theirs == self._tie_breaker:
            self._tie_breaker = self._rng.getrandbits(64)
        if self._role is Role.CONTROLLING and controlling is not None:
            if self._tie_breaker >= controlling:
                return True
            self._switch_role(Role.CONTROLLED)
        elif self._role is Role.CONTROLLED and controlled is not None:
            if self._tie_breaker < controlled:
                return True
            self._switch_role(Role.CONTROLLING)
        return False

    def _switch_role(self, role: Role) -> None:
        """Take the other role. Requests in flight claim the old one: their
        retransmissions would set off the conflict again at the peer, so they
        stop (an answer still counts) and their pairs are checked again."""
        self._log.debug("role conflict: now %s", role.value)
        self._role = role
        for generation in self._generations:
            generation.checklist.set_role(controlling=role is Role.CONTROLLING)
            generation.nominating.clear()
            for pair in generation.checklist.pairs:
                pair.nominate_on_success = False
        for check in self._checks.values():
            if check.role is role or check.cancelled:
                continue
            check.cancelled = True
            if check.kind is CheckKind.CONNECTIVITY and check.pair.state is PairState.IN_PROGRESS:
                check.generation.checklist.trigger(check.pair)
        self._events.append(RoleChanged(role=role))

    def _on_answer(
        self,
        check: PendingCheck,
        message: Message,
        base: TransportAddress,
        source: TransportAddress,
        now: float,
    ) -> None:
        """RFC 8445 §7.2.5: an answer to one of our checks or consent requests."""
        if not verify_message_integrity(message, check.key):
            return  # unauthenticated: as if it never arrived
        if not check.transaction.handle_response(message, now):
            return
        self._checks.pop(message.transaction_id, None)
        result = check.transaction.result
        symmetric = source == check.pair.remote.address and base == check.pair.base
        if check.kind is CheckKind.CONSENT:
            self._on_consent_answer(check, result, symmetric=symmetric)
            return
        answer = result.message if isinstance(result, ResponseReceived) else None
        mapped = answer_mapped(answer) if answer is not None and symmetric else None
        if mapped is not None:
            self._on_success(check, mapped, now)
        elif check.cancelled:
            pass  # superseded: only its success still counts
        elif answer is not None and is_role_conflict(answer):
            self._on_role_conflict_answer(check)
        else:
            self._fail(check)

    def _on_role_conflict_answer(self, check: PendingCheck) -> None:
        """RFC 8445 §7.2.5.1: take the other role (unless already done) and check again."""
        if self._role is check.role:
            other = Role.CONTROLLED if check.role is Role.CONTROLLING else Role.CONTROLLING
            self._switch_role(other)
        check.generation.checklist.retry(check.pair)

    def _on_success(self, check: PendingCheck, mapped: TransportAddress, now: float) -> None:
        """RFC 8445 §7.2.5.3: discover a peer-reflexive local candidate, build the
        valid pair, update states, and nominate when the check said so."""
        generation, pair = check.generation, check.pair
        checklist = generation.checklist
        local = generation.local_matching(mapped, pair.base)
        if local is None:
            local = generation.learn_local(mapped, pair, check.priority)
            self._events.append(
                NewPeerReflexiveCandidate(
                    candidate=local.candidate, local=True, generation=generation.number
                )
            )
        if local.candidate.address == pair.local.address:
            valid = pair
        else:
            valid = CandidatePair(
                local.candidate,
                pair.base,
                pair.remote,
                controlling=self._role is Role.CONTROLLING,
                state=PairState.SUCCEEDED,
            )
        pair.apply(PairInput.SUCCESS)
        valid = checklist.add_valid(valid)
        pair.valid_pair = valid
        pair.confirmed_at = valid.confirmed_at = check.last_sent_at
        checklist.unfreeze_foundation(pair.foundation)
        self._cancel_checks(pair, keep=check)
        if pair.component not in generation.first_valid_at:
            generation.first_valid_at[pair.component] = now
            generation.first_rtt[pair.component] = now - check.last_sent_at
        self._events.append(CandidatePairSucceeded(pair=valid.info(), generation=generation.number))
        nominate = check.use_candidate or (
            self._role is Role.CONTROLLED and pair.nominate_on_success
        )
        pair.nominate_on_success = False
        if generation.nominating.get(pair.component) is pair:
            del generation.nominating[pair.component]
        if nominate and generation.checklist.state is not ChecklistState.FAILED:
            self._nominate(generation, valid)

    def _fail(self, check: PendingCheck, *, timed_out: bool = False) -> None:
        """The check timed out, was refused, or was answered from elsewhere (§7.2.5.2).

        A nomination that only timed out is tried again, up to
        `NOMINATION_ATTEMPTS` in all: the pair worked a moment ago, and the peer
        may well have selected it already (it did if the request got through
        and only the answers were lost)."""
        generation, pair = check.generation, check.pair
        component = pair.component
        if timed_out and generation.nominating.get(component) is pair:
            tries = generation.nomination_tries.get(component, 1)
            if tries < NOMINATION_ATTEMPTS and pair.state is PairState.SUCCEEDED:
                generation.nomination_tries[component] = tries + 1
                generation.checklist.trigger(pair, nominate=True)
                return
        if pair.state in (PairState.IN_PROGRESS, PairState.SUCCEEDED):
            pair.apply(PairInput.FAILURE)
        if generation.nominating.get(pair.component) is pair:
            del generation.nominating[pair.component]
            pair.nominate_on_success = False
            if pair.valid_pair is not None:
                generation.checklist.invalidate(pair.valid_pair)
        self._check_failed()

    def _cancel_checks(self, pair: CandidatePair, keep: PendingCheck | None = None) -> None:
        for check in self._checks.values():
            if check.pair is pair and check is not keep and check.kind is CheckKind.CONNECTIVITY:
                check.cancelled = True

    # -- nomination and selection (RFC 8445 §8) --------------------------------------------

    def _nominate(self, generation: Generation, valid: CandidatePair) -> None:
        checklist = generation.checklist
        latest_wins = self._role is Role.CONTROLLED and "ice2" in generation.remote_options
        for slower in checklist.nominate(valid, exclusive=latest_wins):
            self._cancel_checks(slower)
        self._select(generation, valid.component)
        if checklist.all_nominated():
            before = checklist.state
            checklist.apply(ChecklistInput.ALL_NOMINATED)
            if before is ChecklistState.RUNNING:
                self._events.append(Completed(generation=generation.number))
            if generation is self._current:
                self._retire_older_generations()

    def _select(self, generation: Generation, component: int) -> None:
        pair = generation.checklist.selected(component)
        current = self._consent.selected.get(component)
        if pair is None or (current is not None and current.pair is pair):
            return
        if current is not None and current.generation.number > generation.number:
            return
        self._consent.select(generation, pair, self._now)
        self._events.append(SelectedPairChanged(pair=pair.info(), generation=generation.number))

    def _retire_older_generations(self) -> None:
        """The newest generation nominated everything: older ones stop checking.
        They still answer the peer's checks for a consent timeout, since the
        peer may not have seen its own nomination succeed yet and keeps its old
        pair alive with them meanwhile."""
        current = self._current
        for tid, check in list(self._checks.items()):
            if check.generation is not current:
                del self._checks[tid]
        for old in self._generations[:-1]:
            self._retired[old] = self._now + self._config.consent_timeout
        self._generations = [current]

    def _nomination_due(self, generation: Generation) -> dict[int, float]:
        """Regular nomination (§8.1.1): per component without a nomination under
        way, when to nominate its best valid pair. An aggressive agent nominates
        with every check, but pairs that succeeded before it took control (a
        role conflict) were checked without USE-CANDIDATE: it nominates those
        at once."""
        checklist = generation.checklist
        if (
            self._role is not Role.CONTROLLING
            or checklist.state is not ChecklistState.RUNNING
            or generation.remote is None
        ):
            return {}
        wait = self._config.nomination_delay
        if self._config.nomination is Nomination.AGGRESSIVE:
            wait = 0.0
        return generation.nomination_due(
            self._components,
            wait=wait,
            hold_relayed_until=self._relay_hold,
            now=self._now,
            ta=self._config.ta,
        )

    def _nominate_when_due(self, now: float) -> None:
        generation = self._current
        for component, when in self._nomination_due(generation).items():
            if now < when:
                continue
            checklist = generation.checklist
            best = checklist.best_valid(component)
            source = None if best is None else checklist.source_of(best)
            if best is not None and source is None:
                checklist.invalidate(best)  # nothing to check it again with
            elif source is not None:
                generation.nominating[component] = source
                generation.nomination_tries[component] = 1
                checklist.trigger(source, nominate=True)

    # -- time -------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Retransmit or time out checks, send the next paced check, nominate,
        run consent; call at (or after) `get_timer()`."""
        self._now = now
        if self._closed:
            return
        for tid, check in list(self._checks.items()):
            deadline = check.transaction.get_timer()
            if deadline is None or deadline > now:
                continue
            check.transaction.handle_timer(now)
            if check.transaction.result is not None:
                del self._checks[tid]
                if check.kind is CheckKind.CONNECTIVITY and not check.cancelled:
                    self._fail(check, timed_out=True)
        self._nominate_when_due(now)
        generation = self._current
        if self._can_check(generation) and now >= self._next_pace_at():
            pair = generation.checklist.next_check()
            if pair is not None:
                self._send_check(generation, pair, now, CheckKind.CONNECTIVITY)
                self._last_check_at = now
        self._run_consent(now)
        self._check_failed()

    def get_timer(self) -> float | None:
        """The next time `handle_timer` has work; a time in the past means now."""
        if self._closed:
            return None
        deadlines = [
            deadline
            for check in self._checks.values()
            if (deadline := check.transaction.get_timer()) is not None
        ]
        generation = self._current
        if self._can_check(generation) and generation.checklist.has_work():
            deadlines.append(self._next_pace_at())
        deadlines.extend(self._nomination_due(generation).values())
        deadlines.extend(self._consent.deadlines())
        return min(deadlines, default=None)

    def datagrams_to_send(self, now: float) -> list[Transmit]:
        """Everything due: answers, new checks, retransmissions, consent, keepalives."""
        self._now = now
        out, self._outbox = self._outbox, []
        for check in self._checks.values():
            for data in check.transaction.datagrams_to_send(now):
                if not check.cancelled:
                    check.last_sent_at = now
                    out.append(Transmit(data, check.pair.base, check.pair.remote.address))
        return out

    def _can_check(self, generation: Generation) -> bool:
        return generation.remote is not None and generation.checklist.state is not (
            ChecklistState.FAILED
        )

    def _next_pace_at(self) -> float:
        """RFC 8445 §14.2: one new check every Ta."""
        if self._last_check_at is None:
            return self._now
        return self._last_check_at + self._config.ta

    def _send_check(
        self, generation: Generation, pair: CandidatePair, now: float, kind: CheckKind
    ) -> None:
        use_candidate = (
            kind is CheckKind.CONNECTIVITY
            and self._role is Role.CONTROLLING
            and (self._config.nomination is Nomination.AGGRESSIVE or pair.nominate_on_success)
        )
        if kind is CheckKind.CONSENT:
            timers = consent_transaction(self._config)
        else:
            busy = generation.checklist.count(PairState.WAITING, PairState.IN_PROGRESS)
            rto = max(self._config.check_rto, self._config.ta * busy)  # RFC 8445 §14.3
            timers = TransactionConfig(rto=rto, rc=self._config.check_rc, rm=self._config.check_rm)
        check = start_check(
            kind,
            generation,
            pair,
            role=self._role,
            tie_breaker=self._tie_breaker,
            use_candidate=use_candidate,
            timers=timers,
            now=now,
        )
        self._checks[check.transaction.transaction_id] = check
        if kind is CheckKind.CONNECTIVITY:
            pair.checked_at = now

    # -- consent (RFC 7675) and keepalives (RFC 8445 §11) -----------------------------------

    def _run_consent(self, now: float) -> None:
        lost, probe = self._consent.due(now)
        for selection in lost:
            for check in self._checks.values():
                if check.pair is selection.pair:
                    check.cancelled = True
            self._events.append(
                ConsentLost(pair=selection.pair.info(), generation=selection.generation.number)
            )
        for selection in probe:
            pair = selection.pair
            if self._config.consent_freshness:
                self._send_check(selection.generation, pair, now, CheckKind.CONSENT)
            else:
                self._outbox.append(
                    Transmit(keepalive_indication(), pair.base, pair.remote.address)
                )

    def _on_consent_answer(
        self, check: PendingCheck, result: TransactionResult | None, *, symmetric: bool
    ) -> None:
        """RFC 7675 §5.1: a valid, symmetric success grants consent."""
        if not symmetric or not isinstance(result, ResponseReceived):
            return
        if result.message.message_class is MessageClass.SUCCESS:
            self._consent.granted(check.pair, check.last_sent_at)

    # -- failure ----------------------------------------------------------------------------

    def _check_failed(self) -> None:
        """RFC 8445 §8.1.2 with RFC 8838 §8: fail only once neither side will trickle more."""
        generation = self._current
        checklist = generation.checklist
        if (
            checklist.state is ChecklistState.RUNNING
            and generation.local_done
            and generation.remote_done
            and generation.remote is not None
            and checklist.exhausted()
        ):
            checklist.apply(ChecklistInput.EXHAUSTED)
            missing = [c for c in sorted(self._components) if checklist.best_valid(c) is None]
            self._events.append(
                Failed(
                    generation=generation.number,
                    reason=f"no working pair for component(s) {missing}",
                )
            )
