"""What keeps a SIP server up on the open Internet, with no I/O and fixed memory.

- a per-source request budget (the shared token-bucket table of `peerline.ratelimit`);
- a failed-authentication lock-out per source address, in a bounded table;
- scanners recognised by their User-Agent and dropped without an answer;
- an overload gate: when the adapter reports the loop busier than a threshold,
  a share of the new requests get 503 with a randomised Retry-After (so that
  the phones that were turned away do not all come back in the same second),
  while what was already admitted (responses, ACK, CANCEL, requests inside
  dialogs) goes on. The share admitted follows the load (it is cut in
  proportion to the excess, and grows back as the load eases), so a server
  offered twice what it can do still completes about what it can do, instead
  of refusing everything for a while and then nothing. Requests that answer
  a challenge are admitted twice as readily: they finish work already begun.
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


#: The admitted share never drops below this: some new work always gets through,
#: so the gate can see the load fall and open again.
_MIN_SHARE = 0.02


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
        self._window_busy = 0.0
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
        """The adapter reports how long handling took; the gate looks at the last
        half second of them."""
        self._window_busy += seconds
        elapsed = now - self._window_start
        if elapsed >= 0.5:
            self._busy = self._window_busy / elapsed
            self._window_start = now
            self._window_busy = 0.0
            self._steer()

    def _steer(self) -> None:
        """Move the admitted share towards what keeps the loop at the threshold:
        down in proportion to the excess (halved when the loop is flat out, since
        then the excess cannot be seen), up by at most a quarter per window."""
        threshold, busy, share = self.config.busy_threshold, self._busy, self.admitted_share
        if threshold <= 0:
            self.admitted_share = 1.0
        elif busy >= 0.98:
            self.admitted_share = max(_MIN_SHARE, share * 0.5)
        elif busy > threshold:
            self.admitted_share = max(_MIN_SHARE, share * threshold / busy)
        elif share < 1.0:
            grow = 1.25 if busy <= 0 else min(1.25, threshold / busy)
            self.admitted_share = min(1.0, share * grow)

    @property
    def busy(self) -> float:
        return self._busy

    @property
    def saturated(self) -> bool:
        """Some new requests are being turned away."""
        return self.forced_overload or self.admitted_share < 1.0

    def admit(self, *, answers_challenge: bool = False) -> bool:
        """Whether to take on one new request (False: answer it 503)."""
        if self.forced_overload:
            return False
        share = self.admitted_share
        if share >= 1.0:
            return True
        kind = 1 if answers_challenge else 0
        credit = self._credit[kind] + (min(1.0, 2 * share) if answers_challenge else share)
        if credit >= 1.0:
            self._credit[kind] = credit - 1.0
            return True
        self._credit[kind] = credit
        return False

    def retry_after(self) -> int:
        low, high = self.config.retry_after
        return self._rng.randint(low, high)
