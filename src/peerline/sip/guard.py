"""What keeps a SIP server up on the open Internet, with no I/O and fixed memory.

- a per-source request budget (the shared token-bucket table of `peerline.ratelimit`);
- a failed-authentication lock-out per source address, in a bounded table;
- scanners recognised by their User-Agent and dropped without an answer;
- an overload gate: when the adapter reports the loop busier than a threshold,
  a share of the new requests get 503 with a randomised Retry-After (so that
  the phones that were turned away do not all come back in the same second),
  while what was already admitted (responses, ACK, CANCEL, requests inside
  dialogs) goes on. The share admitted is set from what admitted and refused
  requests were measured to cost, so that the loop stays at the threshold: a
  server offered twice what it can do still completes about what it can, instead
  of refusing everything for a while and then nothing. Requests that answer a
  challenge are admitted half again as readily: they finish work already begun.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field

from peerline.ratelimit import RateLimit, SourceBuckets

#: User-Agent substrings of the common SIP scanners and brute-forcers (lower case).
SCANNER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "iwar",
    "sundayddr",
    "vaxsipuseragent",
    "pplsip",
    "smap",
)


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Limits of the guard; every one can be turned off with 0."""

    rate: RateLimit = field(default_factory=lambda: RateLimit(rate=500.0, burst=1000.0))
    #: Failed authentications from one address before it is locked out.
    max_failures: int = 20
    #: Failures older than this are forgotten.
    failure_window: float = 60.0
    #: How long a locked-out address gets 403 without any digest work.
    lockout: float = 300.0
    #: Addresses tracked for lock-out; the least recently seen is forgotten first.
    max_tracked: int = 65536
    #: Fraction of wall-clock time the loop may be busy before new work is refused.
    busy_threshold: float = 0.9
    #: Retry-After of a 503 is drawn uniformly from this range (seconds).
    retry_after: tuple[int, int] = (5, 30)


#: The admitted share never drops below this. A 503 costs a parse too, and once
#: the loop is flat out every request turned away is one more read instead of one
#: more served (what cannot be read, the socket buffer drops for free): so at most
#: half are turned away, enough to make their senders back off (Retry-After)
#: rather than retransmit, while the loop keeps doing work.
_MIN_SHARE = 0.5
#: How often the gate steers (seconds).
_WINDOW = 0.5
#: What the gate decided about the message being handled.
_OTHER, _ADMITTED, _REFUSED = 0, 1, 2


@dataclass(slots=True)
class _Failures:
    count: int
    since: float
    locked_until: float


class Guard:
    """Admission decisions for the SIP element."""

    def __init__(self, config: GuardConfig, now: float, rng: random.Random | None = None) -> None:
        self.config = config
        self._buckets = SourceBuckets(config.rate, now)
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._rng = rng or random.Random()
        self._busy = 0.0
        self._window_start = now
        # Time spent and messages handled this window, by the gate's decision.
        self._window_time = [0.0, 0.0, 0.0]
        self._window_count = [0, 0, 0]
        self._decision = _OTHER
        self._cost_admitted: float | None = None
        self._cost_refused: float | None = None
        self.forced_overload = False
        #: The share of new requests admitted now (1.0 unless overloaded).
        self.admitted_share = 1.0
        # Credit accumulators: a request is admitted each time its class's credit
        # reaches 1, so exactly the admitted share passes, evenly spread.
        self._credit = [0.0, 0.0]

    # -- per source ----------------------------------------------------------
    def allow(self, ip: str, now: float) -> bool:
        """Whether a message from `ip` may be looked at at all."""
        return not self.config.rate.enabled or self._buckets.allow(ip, now)

    def locked_out(self, ip: str, now: float) -> bool:
        entry = self._failures.get(ip)
        return entry is not None and entry.locked_until > now

    def auth_failed(self, ip: str, now: float) -> None:
        config = self.config
        if config.max_failures <= 0:
            return
        entry = self._failures.get(ip)
        if entry is None or now - entry.since > config.failure_window:
            entry = _Failures(0, now, 0.0)
            self._failures[ip] = entry
        self._failures.move_to_end(ip)
        entry.count += 1
        if entry.count >= config.max_failures:
            entry.locked_until = now + config.lockout
        while len(self._failures) > config.max_tracked:
            self._failures.popitem(last=False)

    def auth_succeeded(self, ip: str) -> None:
        entry = self._failures.get(ip)
        if entry is not None and entry.locked_until == 0.0:
            del self._failures[ip]

    @staticmethod
    def is_scanner(user_agent: str | None) -> bool:
        if not user_agent:
            return False
        agent = user_agent.lower()
        return any(name in agent for name in SCANNER_AGENTS)

    # -- overload ------------------------------------------------------------
    def record_busy(self, seconds: float, now: float) -> None:
        """The adapter reports how long handling one message took. The time is put
        down to the gate's decision about that message (admitted, refused, or none:
        a response, an ACK, a retransmission), and every half second the gate
        steers on what the last half second cost."""
        kind = self._decision
        self._decision = _OTHER
        self._window_time[kind] += seconds
        self._window_count[kind] += 1
        elapsed = now - self._window_start
        if elapsed >= _WINDOW:
            self._busy = sum(self._window_time) / elapsed
            if elapsed > 4 * _WINDOW:
                self.admitted_share = 1.0  # quiet for a while: that load has gone
            else:
                self._steer(elapsed)
            self._window_start = now
            self._window_time = [0.0, 0.0, 0.0]
            self._window_count = [0, 0, 0]

    def _steer(self, elapsed: float) -> None:
        """Set the admitted share so that the coming half second, if it brings as many
        new requests as the last, keeps the loop at the threshold. What an admitted
        and a refused request cost is measured, not assumed: when a 503 costs about
        as much as the work it spares (the parse is most of it), refusing cannot
        help, and the gate stays open (the socket buffer drops what is too much)."""
        threshold = self.config.busy_threshold
        if threshold <= 0:
            self.admitted_share = 1.0
            return
        times, counts = self._window_time, self._window_count
        if counts[_ADMITTED]:
            self._cost_admitted = times[_ADMITTED] / counts[_ADMITTED]
        if counts[_REFUSED]:
            self._cost_refused = times[_REFUSED] / counts[_REFUSED]
        new = counts[_ADMITTED] + counts[_REFUSED]
        admitted_cost = self._cost_admitted
        if new == 0 or admitted_cost is None:
            return
        if self._busy <= threshold and self.admitted_share >= 1.0:
            return
        share = self.admitted_share
        refused_cost = self._cost_refused
        guessed = refused_cost is None
        if refused_cost is None:
            refused_cost = admitted_cost / 2  # a first guess, until a 503 has been timed
        if admitted_cost <= 1.1 * refused_cost:
            target = 1.0
        else:
            budget = threshold * elapsed - times[_OTHER]
            target = (budget / new - refused_cost) / (admitted_cost - refused_cost)
        if guessed:
            target = max(target, share / 2)  # on a guess, close by half at most
        target = min(1.0, max(_MIN_SHARE, target))
        # Close at once; open by doubling at most, so one quiet moment is not a flood.
        self.admitted_share = target if target < share else min(target, 2 * share)

    @property
    def busy(self) -> float:
        return self._busy

    @property
    def saturated(self) -> bool:
        """Some new requests are being turned away."""
        return self.forced_overload or self.admitted_share < 1.0

    def admit(self, *, answers_challenge: bool = False) -> bool:
        """Whether to take on one new request (False: answer it 503)."""
        admitted = self._admit(answers_challenge)
        self._decision = _ADMITTED if admitted else _REFUSED
        return admitted

    def _admit(self, answers_challenge: bool) -> bool:
        if self.forced_overload:
            return False
        share = self.admitted_share
        if share >= 1.0:
            return True
        kind = 1 if answers_challenge else 0
        credit = self._credit[kind] + (min(1.0, 1.5 * share) if answers_challenge else share)
        if credit >= 1.0:
            self._credit[kind] = credit - 1.0
            return True
        self._credit[kind] = credit
        return False

    def retry_after(self) -> int:
        low, high = self.config.retry_after
        return self._rng.randint(low, high)
