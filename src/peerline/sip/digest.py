"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), with no state.

A server challenges with one WWW-Authenticate (or Proxy-Authenticate) per
algorithm, SHA-256 first and MD5 for older phones (RFC 8760 §2.4). Its nonces
carry their own timestamp and an HMAC under a server secret: any server that
knows the secret can check a nonce and tell a forged one from an expired one
(answered with stale=true) without remembering anything. Every comparison of
secrets is constant-time. The client side computes answers for tests and for
our own user agent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

from peerline.sip._syntax import quote
from peerline.sip.errors import MalformedMessage
from peerline.sip.fields import AuthField
from peerline.sip.message import Request


class Algorithm(StrEnum):
    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @property
    def session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def hash_name(self) -> str:
        base = self.value.removesuffix("-sess")
        return {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[base]


_ALGORITHMS = {a.value.lower(): a for a in Algorithm}


def parse_algorithm(text: str | None) -> Algorithm:
    """The algorithm named in a header; absent means MD5 (RFC 2617 §3.2.1)."""
    if text is None:
        return Algorithm.MD5
    try:
        return _ALGORITHMS[text.lower()]
    except KeyError:
        raise MalformedMessage(f"unknown digest algorithm {text!r}") from None


def hash_hex(algorithm: Algorithm, text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.new(algorithm.hash_name, data).hexdigest()


def compute_ha1(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a users file may store instead of the password."""
    return hash_hex(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: Algorithm,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (and RFC 2069 when there is no qop)."""
    if algorithm.session:
        ha1 = hash_hex(algorithm, f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + hash_hex(algorithm, body)
    ha2 = hash_hex(algorithm, a2)
    if qop is None:
        return hash_hex(algorithm, f"{ha1}:{nonce}:{ha2}")
    return hash_hex(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """What a 401/407 asks for."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False

    def to_header_value(self) -> str:
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    @classmethod
    def from_field(cls, field: AuthField) -> DigestChallenge:
        if field.scheme.lower() != "digest":
            raise MalformedMessage(f"not a Digest challenge: {field.scheme!r}")
        realm, nonce = field.get("realm"), field.get("nonce")
        if realm is None or nonce is None:
            raise MalformedMessage("Digest challenge without realm or nonce")
        qop = tuple(q.strip() for q in (field.get("qop") or "").split(",") if q.strip())
        stale = (field.get("stale") or "").lower() == "true"
        algorithm = parse_algorithm(field.get("algorithm"))
        return cls(realm, nonce, algorithm, qop, field.get("opaque"), stale)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """What an Authorization / Proxy-Authorization header says."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def to_header_value(self) -> str:
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"nonce={quote(self.nonce)}",
            f"uri={quote(self.uri)}",
            f"response={quote(self.response)}",
            f"algorithm={self.algorithm.value}",
        ]
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f"cnonce={quote(self.cnonce or '')}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        return "Digest " + ", ".join(parts)

    @classmethod
    def from_field(cls, field: AuthField) -> DigestCredentials:
        if field.scheme.lower() != "digest":
            raise MalformedMessage(f"not Digest credentials: {field.scheme!r}")
        values = {}
        for name in ("username", "realm", "nonce", "uri", "response"):
            value = field.get(name)
            if value is None:
                raise MalformedMessage(f"Digest credentials without {name}")
            values[name] = value
        qop = field.get("qop")
        nc, cnonce = field.get("nc"), field.get("cnonce")
        if qop is not None and (nc is None or cnonce is None):
            raise MalformedMessage("Digest credentials with qop need nc and cnonce")
        return cls(
            values["username"],
            values["realm"],
            values["nonce"],
            values["uri"],
            values["response"],
            parse_algorithm(field.get("algorithm")),
            qop,
            nc,
            cnonce,
            field.get("opaque"),
        )


def answer_challenge(
    challenge: DigestChallenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> DigestCredentials:
    """The client's answer. `cnonce` is passed in so that answers are reproducible."""
    qop = next((q for q in ("auth", "auth-int") if q in challenge.qop), None)
    nc_text = f"{nc:08x}" if qop else None
    ha1 = compute_ha1(challenge.algorithm, username, challenge.realm, password)
    response = compute_response(
        algorithm=challenge.algorithm,
        ha1=ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce if qop else None,
        body=body,
    )
    return DigestCredentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        response,
        challenge.algorithm,
        qop,
        nc_text,
        cnonce if qop else None,
        challenge.opaque,
    )


class Verdict(Enum):
    OK = "ok"
    #: Right password, nonce too old: challenge again with stale=true.
    STALE = "stale"
    #: Anything else, including an unknown user: the same answer, so that users
    #: cannot be enumerated.
    FAILED = "failed"


class NonceCheck(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    FORGED = "forged"


_NONCE = struct.Struct(">q8s")
_MAC_BYTES = 16


class DigestServer:
    """Challenges and verifies for one realm, keeping no per-client state.

    `now` is any clock, the same for challenges and checks (wall-clock time when
    several servers share the secret). Verification cannot see a replayed nc
    inside the nonce lifetime; keep the lifetime short to bound that.
    """

    def __init__(
        self,
        secret: bytes,
        realm: str,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[Algorithm] = (Algorithm.SHA_256, Algorithm.MD5),
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the digest secret needs at least 16 bytes")
        if not algorithms:
            raise ValueError("at least one digest algorithm")
        self._secret = secret
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = tuple(algorithms)
        self.opaque = _b64(self._mac(b"opaque")[:12])

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._secret, self.realm.encode() + b"\0" + data, hashlib.sha256).digest()

    def make_nonce(self, now: float) -> str:
        body = _NONCE.pack(int(now * 1000), secrets.token_bytes(8))
        return _b64(body + self._mac(body)[:_MAC_BYTES])

    def check_nonce(self, nonce: str, now: float) -> NonceCheck:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return NonceCheck.FORGED
        if len(raw) != _NONCE.size + _MAC_BYTES:
            return NonceCheck.FORGED
        body, mac = raw[: _NONCE.size], raw[_NONCE.size :]
        if not hmac.compare_digest(mac, self._mac(body)[:_MAC_BYTES]):
            return NonceCheck.FORGED
        issued = _NONCE.unpack(body)[0] / 1000
        if not 0 <= now - issued <= self.nonce_lifetime:
            return NonceCheck.EXPIRED
        return NonceCheck.VALID

    def challenges(self, now: float, *, stale: bool = False) -> list[DigestChallenge]:
        """One challenge per algorithm, the preferred first, sharing one nonce."""
        nonce = self.make_nonce(now)
        return [
            DigestChallenge(self.realm, nonce, a, ("auth",), self.opaque, stale)
            for a in self.algorithms
        ]

    def credentials_in(self, request: Request, *, proxy: bool = False) -> DigestCredentials | None:
        """The Digest credentials of `request` for this realm, if it carries any."""
        name = "Proxy-Authorization" if proxy else "Authorization"
        for field in request.auth_fields(name):
            if field.scheme.lower() == "digest" and field.get("realm") == self.realm:
                return DigestCredentials.from_field(field)
        return None

    def verify(
        self,
        credentials: DigestCredentials,
        *,
        method: str,
        now: float,
        password: str | None = None,
        ha1: str | None = None,
        request_uri: str | None = None,
        body: bytes = b"",
    ) -> Verdict:
        """Check an answer against the password, or against the HA1 stored for
        `credentials.algorithm`. With neither (unknown user), the same work is done
        against a throw-away key, and the verdict is FAILED."""
        algorithm = credentials.algorithm
        if password is not None:
            ha1 = compute_ha1(algorithm, credentials.username, self.realm, password)
        known = ha1 is not None
        if ha1 is None:
            ha1 = hash_hex(algorithm, secrets.token_bytes(16))
        expected = compute_response(
            algorithm=algorithm,
            ha1=ha1,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
        matches = hmac.compare_digest(expected.encode(), credentials.response.lower().encode())
        opaque_ok = hmac.compare_digest((credentials.opaque or "").encode(), self.opaque.encode())
        acceptable = (
            known
            and matches
            and opaque_ok
            and credentials.realm == self.realm
            and algorithm in self.algorithms
            and credentials.qop == "auth"
            and (request_uri is None or credentials.uri == request_uri)
        )
        nonce = self.check_nonce(credentials.nonce, now)
        if not acceptable or nonce is NonceCheck.FORGED:
            return Verdict.FAILED
        return Verdict.OK if nonce is NonceCheck.VALID else Verdict.STALE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
