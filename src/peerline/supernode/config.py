"""What `peerline serve` serves and where: one validated dataclass.

Values come from defaults, then a TOML configuration file, then command-line
flags; a flag wins over the file. Every key of the file has the name of its
flag with `_` for `-` (e.g. `stun_port = 3478`, `listen = ["203.0.113.1"]`).
"""

import ipaddress
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from peerline.errors import UsageError
from peerline.net import parse_ip, parse_port
from peerline.ratelimit import RateLimit

DEFAULT_STATE_DIR = Path("/var/lib/peerline")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything a supernode needs to start; validated when built."""

    #: IP addresses to listen on; empty means every address of every interface.
    listen: tuple[str, ...] = ()
    stun_port: int = 3478
    tls_port: int = 5349
    #: A second address of this host: turns RFC 5780 behaviour discovery on.
    alt_ip: str | None = None
    #: The second port for RFC 5780 (default: stun_port + 1).
    alt_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Where the node keeps what it makes for itself (its self-signed certificate).
    state_dir: Path = DEFAULT_STATE_DIR
    #: Responses per second (and burst) any one source address can draw; 0 = no limit.
    rate: float = 500.0
    burst: float = 1000.0
    software: str = "peerline"
    #: Users of TURN and SIP: `NAME:PASSWORD` or `NAME:md5:HA1` (later entries win).
    user: tuple[str, ...] = ()
    users_file: Path | None = None
    #: Authentication realm of TURN and SIP digest (default: the domain, else "peerline").
    realm: str | None = None
    #: The SIP domain this node is registrar for (default: the realm).
    domain: str | None = None
    #: SIP over UDP and TCP (0 = off), TLS (0 = off), WebSocket and secure WebSocket
    #: (0 = off).
    sip_port: int = 5060
    sip_tls_port: int = 5061
    sip_ws_port: int = 0
    sip_wss_port: int = 0
    #: Digest algorithms offered, most preferred first (RFC 8760). Some tools (sipp)
    #: give up at a first challenge they cannot answer instead of taking the next.
    sip_digest: tuple[str, ...] = ("SHA-256", "MD5")
    #: TURN REST-API shared secret: usernames `EXPIRY:NAME`, password
    #: base64(HMAC-SHA1(secret, username)). TURN is on with this or any user.
    auth_secret: str | None = None
    #: Peer networks (CIDR) TURN relays to despite the default deny of special ranges.
    allow_peer: tuple[str, ...] = ()
    #: TURN allocations in all, per user, and bytes/s per allocation (0 = no cap).
    turn_max_allocations: int = 10000
    turn_user_quota: int = 100
    turn_bandwidth: int = 1_250_000
    #: Prometheus text on http://METRICS_LISTEN:METRICS_PORT/metrics (0 = off).
    metrics_port: int = 0
    metrics_listen: str = "127.0.0.1"

    def __post_init__(self) -> None:
        for port in (
            self.stun_port,
            self.tls_port,
            self.rfc5780_alt_port,
            self.sip_port,
            self.sip_tls_port,
            self.sip_ws_port,
            self.sip_wss_port,
        ):
            parse_port(port)
        if self.alt_ip is not None:
            alt = ipaddress.ip_address(self.alt_ip)
            same_family = [
                ip for ip in self.listen if ipaddress.ip_address(ip).version == alt.version
            ]
            if not same_family:
                raise UsageError(
                    f"--alt-ip {self.alt_ip} needs a --listen address of the same family "
                    "(the primary address of RFC 5780 behaviour discovery)"
                )
            if self.alt_ip in self.listen:
                raise UsageError("--alt-ip must differ from the --listen addresses")
            if self.rfc5780_alt_port == self.stun_port:
                raise UsageError("--alt-port must differ from --stun-port")
        allowed = {"sha-256", "md5"}
        if not self.sip_digest or any(a.lower() not in allowed for a in self.sip_digest):
            raise UsageError("--sip-digest: a comma-separated list of SHA-256 and MD5")
        if self.rate < 0 or self.burst < 0:
            raise UsageError("--rate and --burst must not be negative")
        for network in self.allow_peer:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise UsageError(f"--allow-peer: not a network: {network!r}") from None
        if min(self.turn_max_allocations, self.turn_user_quota, self.turn_bandwidth) < 0:
            raise UsageError("TURN quotas and bandwidth must not be negative")
        parse_port(self.metrics_port)
        parse_ip(self.metrics_listen)

    @property
    def rfc5780(self) -> bool:
        return self.alt_ip is not None

    @property
    def rfc5780_alt_port(self) -> int:
        return self.alt_port if self.alt_port is not None else self.stun_port + 1

    @property
    def primary_ip(self) -> str | None:
        """The listen address paired with `alt_ip` for RFC 5780 (the first of its family)."""
        if self.alt_ip is None:
            return None
        version = ipaddress.ip_address(self.alt_ip).version
        return next(ip for ip in self.listen if ipaddress.ip_address(ip).version == version)

    @property
    def auth_realm(self) -> str:
        return self.realm or self.domain or "peerline"

    @property
    def sip_domain(self) -> str:
        return self.domain or self.auth_realm

    @property
    def rate_limit(self) -> RateLimit:
        return RateLimit(rate=self.rate, burst=self.burst)


_PATH_KEYS = {"tls_cert", "tls_key", "state_dir", "users_file"}


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's settings, checked against the known keys; one clear error otherwise."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"cannot read configuration file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"configuration file {path}: {error}") from None
    known = {item.name for item in fields(ServeConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"configuration file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> ServeConfig:
    """Merge defaults < file < flags (flags set to None or empty were not given)."""
    merged: dict[str, Any] = dict(file_values)
    merged.update({key: value for key, value in flag_values.items() if value not in (None, [])})
    try:
        if "listen" in merged:
            listen = merged["listen"]
            merged["listen"] = tuple(
                parse_ip(ip) for ip in ([listen] if isinstance(listen, str) else listen)
            )
        if merged.get("alt_ip") is not None:
            merged["alt_ip"] = parse_ip(merged["alt_ip"])
        for key in _PATH_KEYS & merged.keys():
            merged[key] = Path(merged[key])
        if isinstance(merged.get("sip_digest"), str):
            merged["sip_digest"] = tuple(
                a.strip() for a in merged["sip_digest"].split(",") if a.strip()
            )
        elif "sip_digest" in merged:
            merged["sip_digest"] = tuple(merged["sip_digest"])
        if isinstance(merged.get("allow_peer"), str):
            merged["allow_peer"] = (merged["allow_peer"],)
        elif "allow_peer" in merged:
            merged["allow_peer"] = tuple(merged["allow_peer"])
        for key in ("turn_max_allocations", "turn_user_quota", "turn_bandwidth", "metrics_port"):
            if merged.get(key) is not None:
                merged[key] = int(merged[key])
        if merged.get("metrics_listen") is not None:
            merged["metrics_listen"] = parse_ip(merged["metrics_listen"])
        if "user" in merged:
            users = merged["user"]
            merged["user"] = tuple([users] if isinstance(users, str) else users)
        for key in (
            "stun_port",
            "tls_port",
            "alt_port",
            "sip_port",
            "sip_tls_port",
            "sip_ws_port",
            "sip_wss_port",
        ):
            if merged.get(key) is not None:
                merged[key] = parse_port(merged[key])
        for key in ("rate", "burst"):
            if key in merged:
                merged[key] = float(merged[key])
        return ServeConfig(**merged)
    except (TypeError, ValueError) as error:
        raise UsageError(f"bad configuration: {error}") from None
