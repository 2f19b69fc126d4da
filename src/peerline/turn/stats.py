"""The TURN server's live figures: plain integer counters the core bumps in place.

Kept as attributes of one slotted object (not a dict of names) because the
relay hot path increments them for every packet, and an attribute increment is
the cheapest counter Python has.
"""

from __future__ import annotations

from collections import Counter


class TurnStats:
    """Counters since start; gauges (allocations, permissions, channels) are kept exact."""

    __slots__ = (
        "allocations",
        "allocations_created",
        "allocations_deleted",
        "allocations_expired",
        "bytes_from_peers",
        "bytes_to_peers",
        "channels",
        "dropped",
        "packets_from_peers",
        "packets_to_peers",
        "permissions",
        "refusals",
        "requests",
        "tcp_connections",
    )

    def __init__(self) -> None:
        self.allocations = 0
        self.permissions = 0
        self.channels = 0
        #: RFC 6062 peer connections (connecting, waiting for ConnectionBind, or bound).
        self.tcp_connections = 0
        self.allocations_created = 0
        self.allocations_deleted = 0
        self.allocations_expired = 0
        self.packets_to_peers = 0
        self.bytes_to_peers = 0
        self.packets_from_peers = 0
        self.bytes_from_peers = 0
        self.requests = 0
        #: Requests refused, by reason (the error code's meaning, or a policy's word).
        self.refusals: Counter[str] = Counter()
        #: Packets dropped without an answer, by reason.
        self.dropped: Counter[str] = Counter()

    def snapshot(self) -> dict[str, int]:
        """Every plain counter by name (the Counters are read directly)."""
        return {
            name: getattr(self, name)
            for name in self.__slots__
            if name not in ("refusals", "dropped")
        }
