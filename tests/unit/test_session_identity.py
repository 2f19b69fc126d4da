"""Node identities and RFC 8122 fingerprints: format, strict-but-forgiving parsing,
pinning a certificate, and identities kept in a state directory."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from peerline.session.errors import IdentityError, MalformedFingerprint
from peerline.session.identity import Fingerprint, HashFunction, Identity

ME = Identity.ephemeral()
OTHER = Identity.ephemeral()


def test_fingerprint_is_sha256_of_the_der_certificate_in_sdp_form() -> None:
    der = ME.certificate.public_bytes(serialization.Encoding.DER)
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert ME.fingerprint.format_attribute() == f"a=fingerprint:sha-256 {expected}"
    assert str(ME.fingerprint) == f"sha-256 {expected}"


@pytest.mark.parametrize(
    "text",
    [
        "a=fingerprint:{value}",
        "fingerprint:{value}",
        "{value}",
        "  a=fingerprint:{value}\r\n",
        "a=fingerprint:{lower}",
        "a=fingerprint:SHA-256 {hex}",
    ],
)
def test_every_written_form_parses_back(text: str) -> None:
    fingerprint = ME.fingerprint
    rendered = text.format(
        value=fingerprint.attribute_value(),
        lower=fingerprint.attribute_value().lower(),
        hex=fingerprint.hex,
    )
    assert Fingerprint.parse(rendered) == fingerprint


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "unsupported"),
        ("sha-1 " + ":".join(["AB"] * 20), "unsupported"),
        ("md5 " + ":".join(["AB"] * 16), "unsupported"),
        ("sha-256", "hex byte pairs"),
        ("sha-256 ", "hex byte pairs"),
        ("sha-256 " + ":".join(["AB"] * 31), "32 bytes"),
        ("sha-256 " + ":".join(["AB"] * 33), "32 bytes"),
        ("sha-256 " + "AB" * 32, "hex byte pairs"),  # the colons are not optional
        ("sha-256 " + ":".join(["GZ"] * 32), "hex byte pairs"),
        ("sha-256 " + ":".join(["AB"] * 32) + ":", "hex byte pairs"),
        ("sha-256  " + ":".join(["AB"] * 32), "hex byte pairs"),
        ("sha-256 A:" + ":".join(["AB"] * 31), "hex byte pairs"),
    ],
)
def test_malformed_fingerprints_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(MalformedFingerprint, match=complaint):
        Fingerprint.parse(text)


@given(st.one_of(st.text(max_size=200), st.from_regex(r"sha-(256|384|512) [0-9A-Fa-f:]{0,200}")))
def test_any_text_parses_or_raises_malformed_fingerprint(text: str) -> None:
    try:
        parsed = Fingerprint.parse(text)
    except MalformedFingerprint:
        return
    assert Fingerprint.parse(parsed.format_attribute()) == parsed


@pytest.mark.parametrize("algorithm", list(HashFunction))
def test_longer_hashes_pin_the_same_certificate(algorithm: HashFunction) -> None:
    fingerprint = Fingerprint.of_certificate(ME.certificate, algorithm)
    assert Fingerprint.parse(fingerprint.format_attribute()) == fingerprint
    assert fingerprint.matches(ME.certificate)
    assert not fingerprint.matches(OTHER.certificate)


def test_ephemeral_identities_are_distinct_and_self_consistent() -> None:
    assert ME.fingerprint != OTHER.fingerprint
    assert ME.private_key.public_key() == ME.certificate.public_key()


def test_a_kept_identity_survives_restarts_with_a_private_key(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path)
    second = Identity.load_or_create(tmp_path)
    assert first.fingerprint == second.fingerprint
    key = tmp_path / "identity" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_damaged_identity_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path)
    (tmp_path / "identity" / "cert.pem").write_text("not a certificate")
    with pytest.raises(IdentityError, match="cannot read"):
        Identity.load_or_create(tmp_path)


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path / "a")
    Identity.load_or_create(tmp_path / "b")
    with pytest.raises(IdentityError, match="is not the key of"):
        Identity.load(
            tmp_path / "a" / "identity" / "cert.pem", tmp_path / "b" / "identity" / "key.pem"
        )


def test_an_unwritable_state_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(IdentityError, match="cannot create an identity"):
        Identity.load_or_create(blocker)
