"""SASLprep (RFC 4013 §3 examples) and OpaqueString (RFC 8265 §4.2)."""

import pytest

from peerline.stun import (
    PasswordAlgorithm,
    PasswordPrep,
    PrepError,
    long_term_key,
    opaque_string,
    saslprep,
    short_term_key,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("I\u00adX", "IX"),  # 1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # 2: no transformation
        ("USER", "USER"),  # 3: case preserved
        ("\u00aa", "a"),  # 4: NFKC
        ("\u2168", "IX"),  # 5: NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE (§2.1)
    ],
)
def test_saslprep_rfc4013_examples(given: str, expected: str) -> None:
    """RFC 4013 §3, examples 1-5."""
    assert saslprep(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # 6: prohibited character (control)
        "\u0627\u0031",  # 7: bidirectional check
        "a\ue000",  # private use (C.3)
    ],
)
def test_saslprep_rfc4013_errors(given: str) -> None:
    """RFC 4013 §3, examples 6 and 7."""
    with pytest.raises(PrepError):
        saslprep(given)


def test_saslprep_unassigned_only_for_queries() -> None:
    """RFC 4013 §2.5: unassigned code points (Unicode 3.2) refused in stored strings."""
    with pytest.raises(PrepError):
        saslprep("\u0221")
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"


def test_saslprep_rfc5769_password() -> None:
    """RFC 5769 §2.4: the password before and after SASLprep."""
    assert saslprep("The\u00adM\u00aatr\u2168") == "TheMatrIX"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("TheMatrIX", "TheMatrIX"),
        ("correct horse", "correct horse"),
        ("a\u00a0b\u3000c", "a b c"),  # non-ASCII spaces become U+0020
        ("e\u0301", "\u00e9"),  # NFC
        ("\u00aa\u2168", "\u00aa\u2168"),  # compatibility characters kept (no NFKC)
        ("\uff21", "\uff21"),  # no width mapping
        ("l\u00b7l", "l\u00b7l"),  # CONTEXTO middle dot between two l
        ("\u0915\u094d\u200d", "\u0915\u094d\u200d"),  # ZWJ after a virama
        ("\u30a2\u30fb\u30a4", "\u30a2\u30fb\u30a4"),  # katakana middle dot
    ],
)
def test_opaque_string_accepts(given: str, expected: str) -> None:
    """RFC 8265 §4.2.2 rules: only spaces are mapped, then NFC."""
    assert opaque_string(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "\u0007",
        "The\u00adM\u00aatr\u2168",  # SOFT HYPHEN is Default_Ignorable: disallowed
        "a\ue000",  # private use
        "\u1100",  # old hangul jamo
        "a\u00b7b",  # middle dot not between two l
        "x\u200d",  # ZWJ without virama
        "\u0660\u06f0",  # mixed Arabic-Indic digit sets
        "\U000e0001",  # language tag
    ],
)
def test_opaque_string_refuses(given: str) -> None:
    """RFC 8264 §9: what FreeformClass disallows, and an empty result (RFC 8265 §4.2.3)."""
    with pytest.raises(PrepError):
        opaque_string(given)


def test_keys_prepare_password_and_realm() -> None:
    """RFC 8489 §9.1.1 and §9.2.2: keys from prepared strings; trailing NULs dropped."""
    assert short_term_key("pass\u00a0word") == b"pass word"
    assert len(long_term_key("u", "r", "p")) == 16
    assert len(long_term_key("u", "r", "p", PasswordAlgorithm.SHA256)) == 32
    assert long_term_key("u", "r\x00", "p") == long_term_key("u", "r", "p")
    assert long_term_key("u", "r", "\u2168", prep=PasswordPrep.NONE) != long_term_key(
        "u", "r", "IX", prep=PasswordPrep.NONE
    )
    with pytest.raises(ValueError):
        long_term_key("u", "r", "p", 7)
