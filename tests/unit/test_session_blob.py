"""The copy-paste blob: round trips, survives wrapping, refuses damage with one line."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.errors import UsageError
from peerline.session.blob import PREFIX, decode_blob, encode_blob

TEXT = (
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    "a=candidate:1 1 udp 2130706431 10.1.0.2 40001 typ host\r\n"
)


def test_round_trip() -> None:
    assert decode_blob(encode_blob(TEXT)) == TEXT


def test_one_line_without_spaces() -> None:
    blob = encode_blob(TEXT)
    assert blob.startswith(PREFIX)
    assert not any(c.isspace() for c in blob)


def test_wrapped_and_indented_paste_still_decodes() -> None:
    blob = encode_blob(TEXT)
    wrapped = "  " + "\n   ".join(blob[i : i + 20] for i in range(0, len(blob), 20)) + "\n"
    assert decode_blob(wrapped) == TEXT


def test_truncated_blob_is_refused() -> None:
    blob = encode_blob(TEXT * 5)
    with pytest.raises(UsageError, match=r"incomplete|damaged"):
        decode_blob(blob[: len(blob) // 2])


def test_foreign_text_is_refused() -> None:
    with pytest.raises(UsageError, match="start with PL1"):
        decode_blob("v=0 o=- 1 1 IN IP4 0.0.0.0")


def test_bomb_is_refused() -> None:
    with pytest.raises(UsageError, match="too long"):
        decode_blob(encode_blob("a" * 200_000))


@given(st.text(max_size=300))
def test_any_paste_decodes_or_is_a_usage_error(text: str) -> None:
    with contextlib.suppress(UsageError):
        decode_blob(PREFIX + text)
