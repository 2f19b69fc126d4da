"""Keys for MESSAGE-INTEGRITY(-SHA256) and USERHASH (RFC 8489 §9, §14.4).

Short-term key: the prepared password. Long-term key: a hash of
username ":" realm ":" password, MD5 by default and SHA-256 when the client
chose it with PASSWORD-ALGORITHM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import Enum

from peerline.stun.constants import PasswordAlgorithm
from peerline.stun.errors import EncodeError
from peerline.stun.prep import opaque_string, saslprep


class PasswordPrep(Enum):
    """How realm and password are prepared before hashing.

    OPAQUE_STRING is what RFC 8489 §9.2.2 requires; SASLPREP is RFC 5389's rule
    (and what RFC 5769's vectors assume); NONE hashes the strings as given.
    """

    OPAQUE_STRING = "opaque-string"
    SASLPREP = "saslprep"
    NONE = "none"


_PREPARE: dict[PasswordPrep, Callable[[str], str]] = {
    PasswordPrep.OPAQUE_STRING: opaque_string,
    PasswordPrep.SASLPREP: saslprep,
    PasswordPrep.NONE: lambda s: s,
}


def prepare(text: str, prep: PasswordPrep = PasswordPrep.OPAQUE_STRING) -> str:
    """Trailing NULs dropped (RFC 8489 §9.2.2), then the chosen preparation."""
    return _PREPARE[prep](text.rstrip("\x00"))


def short_term_key(password: str, *, prep: PasswordPrep = PasswordPrep.OPAQUE_STRING) -> bytes:
    """RFC 8489 §9.1.1: key = OpaqueString(password), as UTF-8."""
    return prepare(password, prep).encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: int = PasswordAlgorithm.MD5,
    *,
    prep: PasswordPrep = PasswordPrep.OPAQUE_STRING,
) -> bytes:
    """RFC 8489 §9.2.2: MD5 or SHA-256 of username ":" realm ":" password.

    `username` is used as it appears in USERNAME (the sender already prepared it);
    realm and password are prepared with `prep`. 16 bytes for MD5, 32 for SHA-256.
    """
    material = ":".join(
        (username.rstrip("\x00"), prepare(realm, prep), prepare(password, prep))
    ).encode("utf-8")
    if algorithm == PasswordAlgorithm.MD5:
        return hashlib.md5(material, usedforsecurity=False).digest()
    if algorithm == PasswordAlgorithm.SHA256:
        return hashlib.sha256(material).digest()
    raise EncodeError(f"unsupported password algorithm: {algorithm}")


def userhash(
    username: str, realm: str, *, prep: PasswordPrep = PasswordPrep.OPAQUE_STRING
) -> bytes:
    """RFC 8489 §14.4: SHA-256(OpaqueString(username) ":" OpaqueString(realm))."""
    return hashlib.sha256(f"{prepare(username, prep)}:{prepare(realm, prep)}".encode()).digest()
