"""`peerline serve` configuration: defaults < file < flags, and clear errors."""

from pathlib import Path

import pytest

from peerline.errors import UsageError
from peerline.ratelimit import RateLimit, SourceBuckets
from peerline.supernode.config import build_config, read_config_file


def test_flags_win_over_file(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text('listen = ["127.0.0.1"]\nstun_port = 4000\ntls_port = 6000\n')
    config = build_config(read_config_file(path), {"stun_port": 5000, "listen": []})
    assert config.listen == ("127.0.0.1",)
    assert config.stun_port == 5000
    assert config.tls_port == 6000


def test_rfc5780_needs_primary_of_same_family() -> None:
    with pytest.raises(UsageError, match="same family"):
        build_config({}, {"alt_ip": "127.0.0.2", "listen": ["::1"]})
    config = build_config({}, {"alt_ip": "127.0.0.2", "listen": ["127.0.0.1"]})
    assert config.rfc5780
    assert config.primary_ip == "127.0.0.1"
    assert config.rfc5780_alt_port == 3479


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "unknown setting"),
        ("listen = [\n", "configuration file"),
        ('listen = ["not-an-ip"]\n', "not an IP"),
        ("stun_port = 70000\n", "out of range"),
    ],
)
def test_bad_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        build_config(read_config_file(path), {})


def test_rate_limit_caps_one_source_and_refills() -> None:
    buckets = SourceBuckets(RateLimit(rate=10, burst=5, buckets=16), now=0.0)
    assert sum(buckets.allow("198.51.100.7", 0.0) for _ in range(20)) == 5
    assert buckets.allow("198.51.100.7", 0.5)  # 5 tokens refilled after 0.5 s
    disabled = SourceBuckets(RateLimit(rate=0), now=0.0)
    assert all(disabled.allow("x", 0.0) for _ in range(10_000))
