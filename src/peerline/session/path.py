"""The seam between ICE and a peer session: a path that carries datagrams to one peer.

The ICE adapter owns sockets, relays and the selected pair; the session owns QUIC.
Neither knows how the other works: the adapter hands the session a `DatagramPath`
and calls the session's `PathListener` methods; the session only ever calls
`send`. When ICE switches pairs (nomination of a better pair, ICE restart, relay
to direct) the path object stays the same and only `describe()` changes, so QUIC
sees one unchanging peer and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class PathInfo:
    """What the selected pair is, for people: `local_type`/`remote_type` are
    `host`, `srflx`, `prflx` or `relay`; `relayed` when either side is `relay`."""

    local_type: str
    remote_type: str
    local_address: str
    remote_address: str
    relayed: bool

    def __str__(self) -> str:
        kind = "relayed" if self.relayed else "direct"
        return (
            f"{kind}: {self.local_type} {self.local_address} -> "
            f"{self.remote_type} {self.remote_address}"
        )


class DatagramPath(Protocol):
    """Datagrams to the peer over whatever pair ICE has selected now."""

    def send(self, data: bytes) -> None:
        """Send one datagram; silently dropped when no pair is selected (as UDP would)."""

    def describe(self) -> PathInfo | None:
        """The selected pair now, or None when there is none (yet, or consent lost)."""


class PathListener(Protocol):
    """What the path owner tells the session."""

    def datagram_received(self, data: bytes) -> None:
        """An application datagram (not STUN, not TURN framing) from the peer."""

    def path_changed(self, info: PathInfo) -> None:
        """ICE selected a (new) pair; traffic goes over it from now on."""

    def path_lost(self, reason: str) -> None:
        """Consent was lost (RFC 7675) or ICE failed: nothing reaches the peer now."""
