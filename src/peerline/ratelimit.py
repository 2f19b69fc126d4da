"""Per-source rate limits whose memory does not grow with the number of sources.

A server on the open Internet must cap what any one address can make it send,
yet keep no per-source state for unauthenticated traffic (a flood of spoofed
sources would otherwise fill memory). So sources share a fixed table of token
buckets, indexed by a keyed hash of the source: memory is fixed at start, and
the worst a hash collision does is make two sources share one budget. The hash
is Python's own string hash (SipHash with a random key per process), so an
attacker cannot aim many sources at one bucket from outside.
"""

from array import array
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`rate` tokens per second refill each bucket, up to `burst`; 0 disables the limit."""

    rate: float = 500.0
    burst: float = 1000.0
    buckets: int = 65536

    @property
    def enabled(self) -> bool:
        return self.rate > 0


class SourceBuckets:
    """A fixed table of token buckets shared by hash among sources."""

    __slots__ = ("_limit", "_stamps", "_tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._limit = limit
        size = max(1, limit.buckets)
        self._tokens = array("d", [limit.burst]) * size
        self._stamps = array("d", [now]) * size

    def allow(self, source: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens from `source`'s bucket if it has them."""
        limit = self._limit
        if limit.rate <= 0:
            return True
        slot = hash(source) % len(self._tokens)
        tokens = self._tokens[slot] + (now - self._stamps[slot]) * limit.rate
        tokens = min(tokens, limit.burst)
        self._stamps[slot] = now
        if tokens < cost:
            self._tokens[slot] = tokens
            return False
        self._tokens[slot] = tokens - cost
        return True
