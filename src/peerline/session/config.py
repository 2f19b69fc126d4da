"""How a peer session is tuned, in one validated, documented value.

The defaults, and why:

- `idle_timeout` 30 s: RFC 7675 withdraws consent after 30 s without a
  response, so QUIC gives up no later than ICE would.
- `keepalive_interval` 10 s: a PING when we have sent nothing for 10 s keeps
  NAT bindings warm on NATs with the shortest common UDP timeouts (30 s; RFC 4787
  asks for 2 min, many home routers do less) and leaves two more tries inside
  the idle timeout on a lossy path. ICE's consent checks (every ~5 s) refresh
  the binding as well; the keepalive is what keeps *QUIC* from idling out on a
  quiet session.
- `max_datagram_size` 1200: QUIC's minimum, which every path must carry. Over
  IPv6 with a TURN channel header (4 bytes) it still fits IPv6's 1280-byte
  minimum MTU, and with a Send indication (36) any 1400-byte tunnel, so relayed
  and tunnelled paths never fragment. aioquic does no path MTU discovery, so
  larger is a gamble (it is a setting for paths known to carry more).
- congestion control CUBIC: it grows the window back faster than Reno on long,
  fat paths (the lab's 50-100 ms RTT links).
- windows: 2 MiB per stream and 8 MiB per connection at the start (aioquic
  doubles them as data flows), enough for ~160 Mbit/s at 100 ms RTT before the
  first raise; a reader that stops reading stops its stream's window from
  growing, so an unread stream holds at most its window at that moment. aioquic
  doubles a window whenever half of it is used, so that is the initial window
  early on, but up to about as much again as the stream had carried when a
  reader stalls late in a long transfer (a limit of aioquic 1.x's growth rule).
- `write_high_water` 4 MiB / `write_low_water` 1 MiB: a writer's `drain()`
  waits while more than the high mark is unacknowledged, and wakes below the
  low mark: memory is bounded and the pipe stays full. Unacknowledged data is at
  least a bandwidth-delay product: 1 MiB held a 100 ms path to ~18 Mbit/s in the
  lab, 4 MiB gave it ~45.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from peerline.session.errors import SessionUsageError

ALPN = "peerline/1"
"""The ALPN protocol both sides must offer (anything else fails the handshake)."""

KIB = 1024
MIB = 1024 * KIB


class SessionRole(Enum):
    """Which end of QUIC this side is. The ICE controlling side (the offerer) is the client."""

    CLIENT = "client"
    SERVER = "server"

    @classmethod
    def for_ice(cls, *, controlling: bool) -> SessionRole:
        return cls.CLIENT if controlling else cls.SERVER


class CongestionControl(Enum):
    """The congestion controllers aioquic ships (their aioquic names as values)."""

    RENO = "reno"
    CUBIC = "cubic"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Tuning of one peer session; see the module docstring for why each default."""

    idle_timeout: float = 30.0
    keepalive_interval: float = 10.0
    max_datagram_size: int = 1200
    congestion_control: CongestionControl = CongestionControl.CUBIC
    stream_window: int = 2 * MIB
    connection_window: int = 8 * MIB
    write_high_water: int = 4 * MIB
    write_low_water: int = 1 * MIB
    read_buffer: int = 512 * KIB
    """A stream's reader holds up to about twice this before its window stops growing."""
    max_message_size: int = 1 * MIB
    """The largest message either side may send; both sides should agree on it."""
    message_queue: int = 256
    """Received messages held for `receive_message` before the peer is held back."""

    def __post_init__(self) -> None:
        if self.idle_timeout <= 0 or self.keepalive_interval <= 0:
            raise SessionUsageError("idle_timeout and keepalive_interval must be positive")
        if self.keepalive_interval >= self.idle_timeout:
            raise SessionUsageError("keepalive_interval must be shorter than idle_timeout")
        if not 1200 <= self.max_datagram_size <= 65527:
            raise SessionUsageError("max_datagram_size must be 1200-65527 (QUIC's minimum is 1200)")
        if min(self.stream_window, self.connection_window, self.read_buffer) < 64 * KIB:
            raise SessionUsageError("windows and read_buffer must be at least 64 KiB")
        if not 0 < self.write_low_water < self.write_high_water:
            raise SessionUsageError("need 0 < write_low_water < write_high_water")
        if not 0 < self.max_message_size <= 64 * MIB:
            raise SessionUsageError("max_message_size must be 1 byte to 64 MiB")
        if self.message_queue < 1:
            raise SessionUsageError("message_queue must be at least 1")
