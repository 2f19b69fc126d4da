"""String preparation for credentials: SASLprep (RFC 4013) and OpaqueString (RFC 8265).

RFC 8489 §9 prepares passwords and realms with the PRECIS OpaqueString profile;
RFC 5389 (and RFC 5769's test vectors) used SASLprep. Both are built here from
the standard library's `stringprep` and `unicodedata` tables.
"""

from __future__ import annotations

import stringprep
import unicodedata

from peerline.stun.errors import PrepError

# -- SASLprep (RFC 4013, a profile of stringprep RFC 3454, Unicode 3.2) ---------

_SASL_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """RFC 4013: map (§2.1), NFKC (§2.2), prohibit (§2.3), bidi (§2.4), unassigned (§2.5).

    Unassigned code points are refused unless `allow_unassigned` (stringprep's
    "query" strings); credentials are "stored strings", so they are refused by default.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    result = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in result:
        if any(table(c) for table in _SASL_PROHIBITED):
            raise PrepError(f"SASLprep: prohibited character U+{ord(c):04X}")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise PrepError(f"SASLprep: unassigned code point U+{ord(c):04X}")
    if any(stringprep.in_table_d1(c) for c in result) and (
        any(stringprep.in_table_d2(c) for c in result)
        or not stringprep.in_table_d1(result[0])
        or not stringprep.in_table_d1(result[-1])
    ):
        raise PrepError("SASLprep: bidirectional rule (RFC 3454 §6) violated")
    return result


# -- OpaqueString (RFC 8265 §4.2) over the PRECIS FreeformClass (RFC 8264) ------

_EXCEPTION_PVALID = frozenset((0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007))
_EXCEPTION_DISALLOWED = frozenset(
    (0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B)
)
_CONTEXTO = frozenset(
    (0x00B7, 0x0375, 0x05F3, 0x05F4, 0x30FB, *range(0x0660, 0x066A), *range(0x06F0, 0x06FA))
)
_CONTEXTJ = frozenset((0x200C, 0x200D))
# Unicode Default_Ignorable_Code_Point (DerivedCoreProperties), which PRECIS
# disallows; unicodedata does not expose the property.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_OLD_HANGUL_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97C), (0xD7B0, 0xD7C6), (0xD7CB, 0xD7FB))
_LETTER_DIGITS = frozenset(("Ll", "Lu", "Lo", "Nd", "Lm", "Mn", "Mc"))
_FREE = frozenset(
    ("Lt", "Nl", "No", "Me", "Zs", "Sm", "Sc", "Sk", "So", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po")
)


def _in(ranges: tuple[tuple[int, int], ...], cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _freeform_status(c: str) -> str:
    """RFC 8264 §8 derivation for FreeformClass: "valid", "context" or "disallowed"."""
    cp = ord(c)
    if 0x21 <= cp <= 0x7E or cp in _EXCEPTION_PVALID:
        return "valid"
    if cp in _CONTEXTO or cp in _CONTEXTJ:
        return "context"
    category = unicodedata.category(c)
    if (
        cp in _EXCEPTION_DISALLOWED
        or category in ("Cn", "Cc", "Cs", "Co")  # unassigned, controls, surrogates, private
        or (0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE)  # noncharacters
        or _in(_OLD_HANGUL_JAMO, cp)
        or _in(_DEFAULT_IGNORABLE, cp)
    ):
        return "disallowed"
    if unicodedata.normalize("NFKC", c) != c or category in _LETTER_DIGITS or category in _FREE:
        return "valid"
    return "disallowed"


def _script_is(c: str, *prefixes: str) -> bool:
    """Rough script test from the character name (unicodedata has no Script property)."""
    return unicodedata.name(c, "").startswith(prefixes)


def _context_ok(text: str, i: int) -> bool:
    """RFC 5892 Appendix A contextual rules, as PRECIS applies them (RFC 8264 §9.6)."""
    cp = ord(text[i])
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if cp in _CONTEXTJ:  # ZWNJ / ZWJ after a virama (the joining-type branch is not checked)
        return bool(before) and unicodedata.combining(before) == 9
    if cp == 0x00B7:
        return before == "l" and after == "l"
    if cp == 0x0375:
        return bool(after) and _script_is(after, "GREEK")
    if cp in (0x05F3, 0x05F4):
        return bool(before) and _script_is(before, "HEBREW")
    if cp == 0x30FB:
        return any(
            _script_is(c, "HIRAGANA", "KATAKANA", "CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH")
            for c in text
            if c != "\u30fb"
        )
    if 0x0660 <= cp <= 0x0669:
        return not any("\u06f0" <= c <= "\u06f9" for c in text)
    return not any("\u0660" <= c <= "\u0669" for c in text)  # 0x06F0-0x06F9


def opaque_string(text: str) -> str:
    """RFC 8265 §4.2 OpaqueString: non-ASCII spaces become U+0020, NFC, then every
    code point must be allowed by FreeformClass; the result must not be empty."""
    mapped = "".join(" " if c != " " and unicodedata.category(c) == "Zs" else c for c in text)
    result = unicodedata.normalize("NFC", mapped)
    if not result:
        raise PrepError("OpaqueString: empty string")
    for i, c in enumerate(result):
        status = _freeform_status(c)
        if status == "disallowed" or (status == "context" and not _context_ok(result, i)):
            raise PrepError(f"OpaqueString: disallowed character U+{ord(c):04X}")
    return result
