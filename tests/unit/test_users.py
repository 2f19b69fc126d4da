"""Users from --user and users files."""

import hashlib
from pathlib import Path

import pytest

from peerline.errors import UsageError
from peerline.users import UserDirectory, parse_user, read_users_file


def test_password_and_ha1_lines(tmp_path: Path) -> None:
    ha1 = hashlib.md5(b"bob:example.org:secret").hexdigest()
    path = tmp_path / "users"
    path.write_text(f"# users\nalice:wonder:land\n\nbob:md5:{ha1}  # hashed\n")
    users = UserDirectory(read_users_file(path))
    alice, bob = users.get("alice"), users.get("bob")
    assert alice is not None
    assert alice.password == "wonder:land"
    assert bob is not None
    assert bob.ha1_md5("example.org") == ha1
    assert alice.ha1_md5("r") == hashlib.md5(b"alice:r:wonder:land").hexdigest()
    assert users.get("carol") is None


@pytest.mark.parametrize("text", ["alice", ":pw", "alice:"])
def test_bad_user_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="NAME:PASSWORD"):
        parse_user(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read users file"):
        read_users_file(tmp_path / "nope")
