"""Users and their secrets, shared by TURN and SIP: `--user` flags and users files.

A users file has one user per line, `#` starts a comment:

    alice:wonderland            # name:password
    bob:md5:0123456789abcdef0123456789abcdef   # name:md5:HA1, HA1 = MD5(name:realm:password)

An HA1 line stores no password, but only works for the realm it was made for
(and, for TURN, only with MD5 keys: the TURN long-term key *is* that HA1).
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peerline.errors import UsageError

_HA1 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str | None = None
    #: MD5(name:realm:password) as lowercase hex, when no password is kept.
    md5_ha1: str | None = None

    def ha1_md5(self, realm: str) -> str:
        """MD5(name:realm:password): SIP digest's HA1 and TURN's MD5 long-term key."""
        if self.password is None:
            assert self.md5_ha1 is not None
            return self.md5_ha1
        return hashlib.md5(f"{self.name}:{realm}:{self.password}".encode()).hexdigest()


def parse_user(text: str, where: str = "--user") -> User:
    """`name:password` or `name:md5:HA1` -> User; one clear error otherwise."""
    name, sep, secret = text.strip().partition(":")
    if not sep or not name or not secret:
        raise UsageError(f"{where}: expected NAME:PASSWORD, got {text.strip()!r}")
    if secret.startswith("md5:") and _HA1.fullmatch(secret[4:]):
        return User(name, md5_ha1=secret[4:].lower())
    return User(name, password=secret)


def read_users_file(path: Path) -> list[User]:
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read users file {path}: {error.strerror}") from None
    users = []
    for number, line in enumerate(lines, start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            users.append(parse_user(content, where=f"{path}:{number}"))
    return users


class UserDirectory:
    """Name -> User; later entries replace earlier ones (flags after files)."""

    def __init__(self, users: list[User]) -> None:
        self._users = {user.name: user for user in users}

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[User]:
        """Each user once, as kept (a later entry of the same name replaced the earlier)."""
        return iter(self._users.values())

    def get(self, name: str) -> User | None:
        return self._users.get(name)
