"""Self-signed certificates, made on the spot when the user gives none.

TLS listeners (STUN/TURN over TLS, SIP over TLS, secure WebSocket) need a
certificate to start at all; a node without one gets a fresh ECDSA P-256
self-signed certificate kept next to its other state.
"""

import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from peerline.errors import UsageError


@dataclass(frozen=True, slots=True)
class CertificatePair:
    certificate: Path
    key: Path

    def fingerprint(self) -> str:
        """SHA-256 fingerprint in the `AB:CD:…` form SDP's a=fingerprint uses."""
        der = x509.load_pem_x509_certificate(self.certificate.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def build_self_signed(
    common_name: str = "peerline",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new ECDSA P-256 key and its self-signed certificate (valid ten years), in memory."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def create_self_signed(directory: Path, common_name: str = "peerline") -> CertificatePair:
    """Write a new key and self-signed certificate (valid ten years) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key, certificate = build_self_signed(common_name)
    pair = CertificatePair(directory / "cert.pem", directory / "key.pem")
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    pair.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return pair


def load_or_create(certificate: Path | None, key: Path | None, state_dir: Path) -> CertificatePair:
    """The user's certificate pair if given, else the node's own, made once."""
    if certificate is not None or key is not None:
        if certificate is None or key is None:
            raise UsageError("--tls-cert and --tls-key go together")
        for path in (certificate, key):
            if not path.is_file():
                raise UsageError(f"no such file: {path}")
        return CertificatePair(certificate, key)
    existing = CertificatePair(state_dir / "cert.pem", state_dir / "key.pem")
    if existing.certificate.is_file() and existing.key.is_file():
        return existing
    return create_self_signed(state_dir)


def server_context(pair: CertificatePair) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(pair.certificate, pair.key)
    except (ssl.SSLError, OSError) as error:
        raise UsageError(f"cannot load TLS certificate {pair.certificate}: {error}") from None
    return context
