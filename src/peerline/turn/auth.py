"""TURN authentication: stateless nonces and the long-term keys of users.

A nonce is made, not stored: an expiry time and an HMAC over it and the
client's address, under a key only this server knows. Checking one costs one
HMAC and no memory, so a flood of unauthenticated requests cannot make the
server remember anything (RFC 8656 §5, RFC 8489 §9.2).

Keys come from two sources: users with passwords (or an MD5 HA1, which *is*
TURN's MD5 key), and the shared-secret "REST API" scheme, where a web service
mints `expiry:name` with password base64(HMAC-SHA1(secret, username)) and the
server recomputes it without any list of users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from peerline.stun import PasswordAlgorithm, long_term_key
from peerline.stun.errors import EncodeError, PrepError
from peerline.users import User

#: RFC 8489 §9.2: nonce cookie, then 24 security-feature bits in base64; bit 0
#: (the first, most significant) says PASSWORD-ALGORITHMS is offered.
NONCE_COOKIE = "obMatJos2"
_FEATURES_SHA256 = base64.b64encode(b"\x80\x00\x00").decode()
_FEATURES_NONE = base64.b64encode(b"\x00\x00\x00").decode()
_MAC_CHARS = 22


class NonceCheck(Enum):
    """What a received nonce turned out to be."""

    VALID = "valid"
    STALE = "stale"  # ours, expired: 438
    FORGED = "forged"  # not ours (or for another client): 438 as well, counted apart


class Nonces:
    """Makes and checks stateless nonces bound to a client IP."""

    __slots__ = ("_lifetime", "_prefix", "_secret")

    def __init__(self, secret: bytes, lifetime: int, *, offer_sha256: bool) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._prefix = NONCE_COOKIE + (_FEATURES_SHA256 if offer_sha256 else _FEATURES_NONE)

    def _mac(self, expiry: str, client_ip: str) -> str:
        digest = hmac.digest(self._secret, f"{expiry}|{client_ip}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]

    def make(self, client_ip: str, wall: float) -> str:
        """A fresh nonce for `client_ip`, good for the configured lifetime."""
        expiry = format(int(wall) + self._lifetime, "x")
        return f"{self._prefix}{expiry}.{self._mac(expiry, client_ip)}"

    def check(self, nonce: str, client_ip: str, wall: float) -> NonceCheck:
        """VALID, STALE (ours but expired) or FORGED (anything else)."""
        prefix = self._prefix
        if not nonce.startswith(prefix) or len(nonce) > 64:
            return NonceCheck.FORGED
        expiry, dot, mac = nonce[len(prefix) :].partition(".")
        if not dot or not expiry or len(expiry) > 12:
            return NonceCheck.FORGED
        if not hmac.compare_digest(mac.encode(), self._mac(expiry, client_ip).encode()):
            return NonceCheck.FORGED
        try:
            deadline = int(expiry, 16)
        except ValueError:
            return NonceCheck.FORGED
        return NonceCheck.VALID if wall < deadline else NonceCheck.STALE


class KeyRefusal(Enum):
    """Why no key could be had for a username (all answered with 401)."""

    UNKNOWN_USER = "unknown-user"
    EXPIRED = "expired-credential"
    NO_PASSWORD = "no-password-for-algorithm"


def rest_password(secret: str, username: str) -> str:
    """The REST-API password for `username` (`expiry:name`): base64(HMAC-SHA1(secret, it))."""
    digest = hmac.digest(secret.encode(), username.encode(), "sha1")
    return base64.b64encode(digest).decode()


def rest_username(name: str, expiry: int) -> str:
    """The username a credential minter hands out: `expiry:name` (expiry in Unix seconds)."""
    return f"{expiry}:{name}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Long-term keys by username, from users and/or a REST shared secret."""

    realm: str
    users: dict[str, User]
    secret: str | None = None

    @classmethod
    def build(cls, realm: str, users: Iterable[User], secret: str | None) -> Credentials:
        return cls(realm, {user.name: user for user in users}, secret or None)

    @property
    def enabled(self) -> bool:
        """True when at least one credential source exists (TURN is on)."""
        return bool(self.users) or self.secret is not None

    def key(self, username: str, algorithm: int, wall: float) -> bytes | KeyRefusal:
        """The long-term key of `username` for `algorithm` (MD5 or SHA-256)."""
        user = self.users.get(username)
        if user is not None:
            if user.password is None:
                if algorithm != PasswordAlgorithm.MD5:
                    return KeyRefusal.NO_PASSWORD
                return bytes.fromhex(user.ha1_md5(self.realm))
            return _long_term(username, self.realm, user.password, algorithm)
        if self.secret is not None:
            stamp, sep, _name = username.partition(":")
            if sep and stamp.isdigit() and len(stamp) <= 12:
                if int(stamp) <= wall:
                    return KeyRefusal.EXPIRED
                password = rest_password(self.secret, username)
                return _long_term(username, self.realm, password, algorithm)
        return KeyRefusal.UNKNOWN_USER


def _long_term(username: str, realm: str, password: str, algorithm: int) -> bytes | KeyRefusal:
    try:
        return long_term_key(username, realm, password, algorithm)
    except (EncodeError, PrepError):
        return KeyRefusal.NO_PASSWORD


def md5_key(username: str, realm: str, password: str) -> bytes:
    """MD5(username:realm:password), the RFC 8656 default key (for tests and tools)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()
