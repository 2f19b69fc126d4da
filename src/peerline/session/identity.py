"""A node's identity for peer sessions: its key pair, self-signed certificate and fingerprint.

Nobody vouches for a peer's certificate: the offer/answer carries each side's
certificate fingerprint (RFC 8122 `a=fingerprint`), and a peer is accepted only
when the certificate it presents in the handshake hashes to that value. So the
certificate itself can be self-signed, and the identity is either kept in the
node's state directory (the same fingerprint across runs, so others can pin it)
or made fresh for one run (`Identity.ephemeral`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from peerline import certs
from peerline.session.errors import IdentityError, MalformedFingerprint

ATTRIBUTE = "fingerprint"
"""The SDP attribute name (RFC 8122 §5)."""


class HashFunction(Enum):
    """The hash functions a fingerprint may use here; values are RFC 8122 textual names.

    SHA-256 is what peerline writes; the longer SHA-2 hashes are accepted from
    peers. SHA-1, MD5 and MD2 are refused: they no longer pin anything.
    """

    SHA_256 = "sha-256"
    SHA_384 = "sha-384"
    SHA_512 = "sha-512"

    @property
    def digest_size(self) -> int:
        return {"sha-256": 32, "sha-384": 48, "sha-512": 64}[self.value]

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.value.replace("-", ""), data).digest()


_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The hash of a certificate's DER encoding (RFC 8122 §5), as SDP carries it."""

    algorithm: HashFunction
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != self.algorithm.digest_size:
            raise MalformedFingerprint(
                f"a {self.algorithm.value} fingerprint has {self.algorithm.digest_size} bytes, "
                f"not {len(self.digest)}"
            )

    @classmethod
    def of_certificate(
        cls, certificate: x509.Certificate, algorithm: HashFunction = HashFunction.SHA_256
    ) -> Fingerprint:
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(algorithm, algorithm.digest(der))

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Read `a=fingerprint:sha-256 AB:CD:…`, `fingerprint:…` or just `sha-256 AB:CD:…`.

        Upper-case hex is what RFC 8122 writes; lower case is accepted too, since
        people paste fingerprints from tools that print it. Anything else raises
        `MalformedFingerprint`.
        """
        value = text.strip()
        if value.startswith("a="):
            value = value[2:]
        if value.lower().startswith(ATTRIBUTE + ":"):
            value = value[len(ATTRIBUTE) + 1 :]
        name, _, hex_text = value.partition(" ")
        try:
            algorithm = HashFunction(name.lower())
        except ValueError:
            raise MalformedFingerprint(
                f"unsupported fingerprint hash {name!r} (use sha-256)"
            ) from None
        if _HEX_PAIRS.fullmatch(hex_text) is None:
            raise MalformedFingerprint("a fingerprint is hex byte pairs joined by ':'")
        return cls(algorithm, bytes.fromhex(hex_text.replace(":", "")))

    @property
    def hex(self) -> str:
        """`AB:CD:…`, upper case as RFC 8122's UHEX."""
        return ":".join(f"{byte:02X}" for byte in self.digest)

    def attribute_value(self) -> str:
        """`sha-256 AB:CD:…`, the text after `a=fingerprint:`."""
        return f"{self.algorithm.value} {self.hex}"

    def format_attribute(self) -> str:
        """The whole SDP line, `a=fingerprint:sha-256 AB:CD:…`."""
        return f"a={ATTRIBUTE}:{self.attribute_value()}"

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether `certificate` hashes to this fingerprint (compared in constant time)."""
        seen = Fingerprint.of_certificate(certificate, self.algorithm)
        return hmac.compare_digest(seen.digest, self.digest)

    def __str__(self) -> str:
        return self.attribute_value()


@dataclass(frozen=True, slots=True)
class Identity:
    """A node's key pair and the self-signed certificate it presents in every session."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> Fingerprint:
        """What the offer/answer says about this node (SHA-256, RFC 8122)."""
        return Fingerprint.of_certificate(self.certificate)

    @classmethod
    def ephemeral(cls, common_name: str = "peerline") -> Identity:
        """A fresh identity for this run only: nothing is written to disk."""
        key, certificate = certs.build_self_signed(common_name)
        return cls(certificate, key)

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Identity:
        """The identity kept in `state_dir/identity/`, made there on first use.

        Keeping it means the node's fingerprint stays the same across runs, so a
        peer can pin it once.
        """
        directory = state_dir / "identity"
        try:
            pair = certs.load_or_create(None, None, directory)
        except OSError as error:
            raise IdentityError(f"cannot create an identity in {directory}: {error}") from None
        return cls.load(pair.certificate, pair.key)

    @classmethod
    def load(cls, certificate_path: Path, key_path: Path) -> Identity:
        """An identity from PEM files; an `IdentityError` saying what is wrong with them."""
        try:
            certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise IdentityError(
                f"cannot read the identity {certificate_path} / {key_path}: {error}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise IdentityError(f"{key_path} is not an ECDSA P-256 key")
        if key.public_key() != certificate.public_key():
            raise IdentityError(f"{key_path} is not the key of {certificate_path}")
        return cls(certificate, key)
