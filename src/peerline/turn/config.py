"""What a TURN server core needs to know: one validated, frozen dataclass.

Every limit that protects the server from its clients lives here, with a
default that is safe on the open Internet; `peerline serve` fills it from
flags and its configuration file.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from peerline.ratelimit import RateLimit
from peerline.turn.policy import PeerPolicy

#: RFC 8656 §3.6 lifetimes, in seconds.
DEFAULT_LIFETIME = 600
MAX_LIFETIME = 3600
PERMISSION_LIFETIME = 300
CHANNEL_LIFETIME = 600
#: RFC 8656 §12: a channel number or peer stays reserved this long after its binding expired.
CHANNEL_REUSE_DELAY = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnConfig:
    """Limits and identity of one TURN server."""

    realm: str
    #: Addresses relayed transport addresses are taken from (first of each family wins
    #: unless the client reached the server on another address of that family).
    relay_ips: tuple[str, ...]
    policy: PeerPolicy = field(default_factory=PeerPolicy)
    default_lifetime: int = DEFAULT_LIFETIME
    max_lifetime: int = MAX_LIFETIME
    permission_lifetime: int = PERMISSION_LIFETIME
    channel_lifetime: int = CHANNEL_LIFETIME
    channel_reuse_delay: int = CHANNEL_REUSE_DELAY
    #: How long a nonce stays good; after that the client gets 438 and a fresh one.
    nonce_lifetime: int = 600
    #: Key of the stateless nonces; random per process unless set (tests, clusters).
    nonce_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    max_allocations: int = 10000
    user_quota: int = 100
    #: Per allocation, both directions together; 0 = no cap.
    bandwidth: int = 1_250_000
    max_permissions: int = 256
    max_channels: int = 256
    #: Requests that fail authentication (or carry none) per source address.
    unauthenticated_limit: RateLimit = field(
        default_factory=lambda: RateLimit(rate=20.0, burst=60.0, buckets=16384)
    )
    software: str = "peerline"
    #: Offer SHA-256 long-term keys (RFC 8489 PASSWORD-ALGORITHMS) as well as MD5.
    offer_sha256: bool = True

    def __post_init__(self) -> None:
        if not self.realm:
            raise ValueError("a TURN server needs a realm")
        for ip in self.relay_ips:
            ipaddress.ip_address(ip)
        if not 0 < self.default_lifetime <= self.max_lifetime:
            raise ValueError("lifetimes must satisfy 0 < default <= max")
        if min(self.permission_lifetime, self.channel_lifetime, self.nonce_lifetime) <= 0:
            raise ValueError("permission, channel and nonce lifetimes must be positive")
        if self.max_allocations < 0 or self.user_quota < 0 or self.bandwidth < 0:
            raise ValueError("quotas and bandwidth must not be negative")
        if self.max_permissions < 1 or not 1 <= self.max_channels <= 0x1000:
            raise ValueError("max_permissions >= 1, 1 <= max_channels <= 4096")
        if len(self.nonce_secret) < 16:
            raise ValueError("nonce_secret must have at least 16 bytes")

    def relay_ip(self, family: int, reached: str) -> str | None:
        """The address to relay from for IP `family` (4 or 6): the one the client
        reached when it is of that family, else the first configured one."""
        if _version(reached) == family and reached in self.relay_ips:
            return reached
        return next((ip for ip in self.relay_ips if _version(ip) == family), None)

    def clamp_lifetime(self, requested: int | None) -> int:
        """RFC 8656 §7.2: the default when absent or shorter, never above the maximum."""
        if requested is None:
            return self.default_lifetime
        return min(max(requested, self.default_lifetime), self.max_lifetime)


def _version(ip: str) -> int:
    return 6 if ":" in ip else 4
