"""The gate every TURN request passes first: authentication, or a cheap refusal.

Split from the server core because it is the one part that faces strangers:
it must answer unauthenticated requests without remembering anything (the
nonce is stateless, the rate limit a fixed table) and decide everything from
the request, the credentials and the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.ratelimit import SourceBuckets
from peerline.stun import (
    AttributeType,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    PasswordAlgorithm,
    PasswordAlgorithmEntry,
    verify_message_integrity,
    verify_message_integrity_sha256,
)
from peerline.stun.attributes import encode_password_algorithms
from peerline.turn.auth import Credentials, KeyRefusal, NonceCheck, Nonces
from peerline.turn.config import TurnConfig
from peerline.turn.stats import TurnStats

_OFFERED_VALUE = encode_password_algorithms(
    [
        PasswordAlgorithmEntry(PasswordAlgorithm.MD5),
        PasswordAlgorithmEntry(PasswordAlgorithm.SHA256),
    ]
)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request whose credentials checked out: who, and how to sign the answer."""

    username: str
    key: bytes
    sha256: bool
    fingerprint: bool

    def sign(self, builder: MessageBuilder) -> bytes:
        """The answer, with the integrity attribute the request used (and FINGERPRINT)."""
        return builder.encode(
            integrity_key=None if self.sha256 else self.key,
            integrity_sha256_key=self.key if self.sha256 else None,
            fingerprint=self.fingerprint,
        )


class Gate:
    """Checks credentials and nonces; answers 400/401/438 within a per-source budget."""

    __slots__ = (
        "_config",
        "_credentials",
        "_keys",
        "_limit",
        "_nonces",
        "_stats",
        "wall_offset",
    )

    def __init__(
        self,
        config: TurnConfig,
        credentials: Credentials,
        stats: TurnStats,
        *,
        now: float,
        wall_offset: float,
    ) -> None:
        #: Unix time minus `now`: nonces and REST credentials expire on the wall clock.
        self.wall_offset = wall_offset
        self._config = config
        self._credentials = credentials
        self._stats = stats
        self._nonces = Nonces(
            config.nonce_secret, config.nonce_lifetime, offer_sha256=config.offer_sha256
        )
        self._limit = SourceBuckets(config.unauthenticated_limit, now)
        #: Long-term keys of configured users, made once each (preparing and hashing
        #: the password costs more than the rest of checking a request). Bounded by the
        #: users file; REST-secret keys expire, so they are made every time.
        self._keys: dict[tuple[str, PasswordAlgorithm], bytes | KeyRefusal] = {}

    def check(self, message: Message, ip: str, now: float) -> Authenticated | bytes | None:
        """Authenticated, or the refusal to send (bytes), or None to drop the request
        (its source is over budget). Nothing is stored on any path."""
        wall = now + self.wall_offset
        sha256 = AttributeType.MESSAGE_INTEGRITY_SHA256 in message
        if not sha256 and AttributeType.MESSAGE_INTEGRITY not in message:
            return self.challenge(message, ip, now, ErrorCode.UNAUTHENTICATED, "unauthenticated")
        try:
            username, realm, nonce = message.username, message.realm, message.nonce
            chosen = message.password_algorithm
            offered = message.get(AttributeType.PASSWORD_ALGORITHMS)
        except MalformedMessage:
            return self.refuse(message, ip, now, ErrorCode.BAD_REQUEST, "malformed")
        if username is None or realm is None or nonce is None:
            return self.refuse(message, ip, now, ErrorCode.BAD_REQUEST, "malformed")
        check = self._nonces.check(nonce, ip, wall)
        if check is not NonceCheck.VALID:
            reason = "stale-nonce" if check is NonceCheck.STALE else "forged-nonce"
            return self.challenge(message, ip, now, ErrorCode.STALE_NONCE, reason)
        algorithm = PasswordAlgorithm.MD5
        if chosen is not None:
            if (
                offered != _OFFERED_VALUE
                or not self._config.offer_sha256
                or chosen.algorithm not in (PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256)
            ):
                return self.refuse(message, ip, now, ErrorCode.BAD_REQUEST, "bad-algorithm")
            algorithm = PasswordAlgorithm(chosen.algorithm)
        key = self._keys.get((username, algorithm))
        if key is None:
            key = self._credentials.key(username, algorithm, wall)
            if username in self._credentials.users:
                self._keys[(username, algorithm)] = key
        if isinstance(key, KeyRefusal):
            return self.challenge(message, ip, now, ErrorCode.UNAUTHENTICATED, key.value)
        verify = verify_message_integrity_sha256 if sha256 else verify_message_integrity
        if realm != self._config.realm or not verify(message, key):
            return self.challenge(message, ip, now, ErrorCode.UNAUTHENTICATED, "bad-integrity")
        return Authenticated(username, key, sha256, AttributeType.FINGERPRINT in message)

    def challenge(
        self, message: Message, ip: str, now: float, code: ErrorCode, reason: str
    ) -> bytes | None:
        """401 or 438 with REALM and a fresh NONCE, unless the source is over budget."""
        if not self._limit.allow(ip, now):
            self._stats.dropped["rate-limited"] += 1
            return None
        self._stats.refusals[reason] += 1
        builder = MessageBuilder.response_to(message, error=True).add_error_code(code)
        builder.add_text(AttributeType.REALM, self._config.realm)
        builder.add_text(AttributeType.NONCE, self._nonces.make(ip, now + self.wall_offset))
        if self._config.offer_sha256:
            builder.add(AttributeType.PASSWORD_ALGORITHMS, _OFFERED_VALUE)
        return builder.encode(fingerprint=AttributeType.FINGERPRINT in message)

    def refuse(
        self, message: Message, ip: str, now: float, code: ErrorCode, reason: str
    ) -> bytes | None:
        """An unsigned error answer, unless the source is over budget."""
        if not self._limit.allow(ip, now):
            self._stats.dropped["rate-limited"] += 1
            return None
        self._stats.refusals[reason] += 1
        builder = MessageBuilder.response_to(message, error=True).add_error_code(code)
        return builder.encode(fingerprint=AttributeType.FINGERPRINT in message)
