"""What keeps a SIP server up on the open Internet, with no I/O and fixed memory.

- a per-source request budget (the shared token-bucket table of `peerline.ratelimit`);
- a failed-authentication lock-out per source address, in a bounded table;
- scanners recognised by their User-Agent and dropped without an answer;
- an overload gate: when the adapter reports the loop busier than a threshold,
  new requests get 503 with a randomised Retry-After (so that the phones that
  were turned away do not all come back in the same second), while what was
  already admitted (responses, ACK, CANCEL, requests inside dialogs) goes on.
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

    @property
    def busy(self) -> float:
        return self._busy

    @property
    def saturated(self) -> bool:
        threshold = self.config.busy_threshold
        return self.forced_overload or (threshold > 0 and self._busy > threshold)

    def retry_after(self) -> int:
        low, high = self.config.retry_after
        return self._rng.randint(low, high)
