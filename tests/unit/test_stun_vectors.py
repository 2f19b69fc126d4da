"""RFC 5769 and RFC 8489 Appendix B test vectors, byte for byte.

The hex below is the RFC text's (RFC 5769 §2.1-2.4; RFC 8489 Appendix B.1 as
published, and as corrected by its verified erratum). Padding in §2.1-2.3 is
0x20, not zero, on purpose: a parser must not care and an encoder must keep it.
"""

import hashlib
import hmac

import pytest

from peerline.stun import (
    AttributeType,
    ErrorCode,
    MalformedMessage,
    MessageBuilder,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmEntry,
    PasswordPrep,
    encode,
    encode_xor_address,
    long_term_key,
    parse,
    short_term_key,
    userhash,
    verify_fingerprint,
    verify_message_integrity,
    verify_message_integrity_sha256,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


SHORT_TERM_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
TID = h("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")
USERNAME_2_4 = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"  # マトリックス
PASSWORD_RAW = "The\u00adM\u00aatr\u2168"
PASSWORD_PREPARED = "TheMatrIX"

# RFC 5769 §2.1 Sample Request
REQUEST = h("""
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf
""")

# RFC 5769 §2.2 Sample IPv4 Response
IPV4_RESPONSE = h("""
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96
""")

# RFC 5769 §2.3 Sample IPv6 Response
IPV6_RESPONSE = h("""
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c
""")

# RFC 5769 §2.4 Sample Request with Long-Term Authentication
LONG_TERM_REQUEST = h("""
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46
                53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
""")

B1_NONCE = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
B1_USERHASH = h("""4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f
                   24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04""")
_B1_COMMON = h("""
    21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f
                24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
    00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b
                39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41 00 00 00
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
""")
# RFC 8489 Appendix B.1 exactly as published: its length field (0x9c) counts the
# header too, and PASSWORD-ALGORITHM is missing although SHA-256 keys the HMAC.
B1_PUBLISHED = (
    h("00 01 00 9c")
    + _B1_COMMON
    + h("""00 1c 00 20 e4 68 6c 8f 0e de b5 90 13 e0 70 90 01 0a 93 ef
                   cc bc cc 54 4c 0a 45 d9 f8 30 aa 6d 6f 73 5a 01""")
)
# RFC 8489 Appendix B.1 as corrected by the verified erratum: length 0x90 and
# PASSWORD-ALGORITHM (SHA-256) before MESSAGE-INTEGRITY-SHA256.
B1_CORRECTED = (
    h("00 01 00 90")
    + _B1_COMMON
    + h("00 1d 00 04 00 02 00 00")
    + h("""00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24
                   13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65""")
)


def test_rfc5769_2_1_sample_request() -> None:
    """RFC 5769 §2.1: attributes, short-term integrity, fingerprint."""
    msg = parse(REQUEST)
    assert msg.method is Method.BINDING
    assert msg.message_class is MessageClass.REQUEST
    assert msg.transaction_id == TID
    assert msg.software == "STUN test client"
    assert msg.priority == 0x6E0001FF
    assert msg.ice_controlled == 0x932FF9B151263B36
    assert msg.username == "evtj:h6vY"
    key = short_term_key(SHORT_TERM_PASSWORD)
    assert verify_message_integrity(msg, key)
    assert not verify_message_integrity(msg, b"wrong")
    assert verify_fingerprint(msg)
    assert encode(msg) == REQUEST


@pytest.mark.parametrize("vector", [REQUEST, IPV4_RESPONSE, IPV6_RESPONSE])
def test_rfc5769_2_1_to_2_3_resigning_reproduces_the_vector(vector: bytes) -> None:
    """RFC 5769 §2.1-2.3: our MESSAGE-INTEGRITY and FINGERPRINT over the vector's own
    attributes (0x20 padding kept) are the RFC's values."""
    stripped = parse(vector).without_integrity()
    again = encode(stripped, integrity_key=short_term_key(SHORT_TERM_PASSWORD), fingerprint=True)
    assert again == vector


def test_rfc5769_2_2_ipv4_response() -> None:
    """RFC 5769 §2.2: XOR-MAPPED-ADDRESS 192.0.2.1 port 32853."""
    msg = parse(IPV4_RESPONSE)
    assert msg.message_class is MessageClass.SUCCESS
    assert msg.software == "test vector"
    assert msg.xor_mapped_address == ("192.0.2.1", 32853)
    assert verify_message_integrity(msg, short_term_key(SHORT_TERM_PASSWORD))
    assert verify_fingerprint(msg)
    assert encode_xor_address(("192.0.2.1", 32853), TID) == msg.get(
        AttributeType.XOR_MAPPED_ADDRESS
    )


def test_rfc5769_2_3_ipv6_response() -> None:
    """RFC 5769 §2.3: XOR-MAPPED-ADDRESS 2001:db8:1234:5678:11:2233:4455:6677 port 32853."""
    msg = parse(IPV6_RESPONSE)
    addr = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert msg.xor_mapped_address == addr
    assert verify_message_integrity(msg, short_term_key(SHORT_TERM_PASSWORD))
    assert verify_fingerprint(msg)
    assert encode_xor_address(addr, TID) == msg.get(AttributeType.XOR_MAPPED_ADDRESS)


def test_rfc5769_2_4_long_term_request() -> None:
    """RFC 5769 §2.4: long-term key from the SASLprep'd password; rebuilt byte for byte."""
    msg = parse(LONG_TERM_REQUEST)
    assert msg.username == USERNAME_2_4
    assert msg.nonce == "f//499k954d6OL34oL9FSTvy64sA"
    assert msg.realm == "example.org"
    assert not verify_fingerprint(msg)  # this vector has none
    key = long_term_key(USERNAME_2_4, "example.org", PASSWORD_PREPARED)
    assert key == long_term_key(
        USERNAME_2_4, "example.org", PASSWORD_RAW, prep=PasswordPrep.SASLPREP
    )
    assert verify_message_integrity(msg, key)
    assert not verify_message_integrity(msg, long_term_key(USERNAME_2_4, "example.org", "x"))
    rebuilt = (
        MessageBuilder(Method.BINDING, MessageClass.REQUEST, msg.transaction_id)
        .add_text(AttributeType.USERNAME, USERNAME_2_4)
        .add_text(AttributeType.NONCE, "f//499k954d6OL34oL9FSTvy64sA")
        .add_text(AttributeType.REALM, "example.org")
        .encode(integrity_key=key)
    )
    assert rebuilt == LONG_TERM_REQUEST


def test_rfc8489_b1_userhash() -> None:
    """RFC 8489 Appendix B.1 / §14.4: USERHASH = SHA-256(username ":" realm)."""
    assert userhash(USERNAME_2_4, "example.org") == B1_USERHASH


def test_rfc8489_b1_as_published_is_inconsistent() -> None:
    """RFC 8489 Appendix B.1 as printed: length 0x9c is 20 more than the attributes,
    so it is not a valid message; its HMAC was taken over the bytes as printed."""
    with pytest.raises(MalformedMessage):
        parse(B1_PUBLISHED)
    key = long_term_key(USERNAME_2_4, "example.org", PASSWORD_PREPARED, PasswordAlgorithm.SHA256)
    mac = hmac.digest(key, B1_PUBLISHED[:-36], "sha256")
    assert mac == B1_PUBLISHED[-32:]


def test_rfc8489_b1_corrected() -> None:
    """RFC 8489 Appendix B.1 (erratum): USERHASH, NONCE, REALM, PASSWORD-ALGORITHM SHA-256,
    MESSAGE-INTEGRITY-SHA256 under the SHA-256 long-term key; rebuilt byte for byte."""
    msg = parse(B1_CORRECTED)
    assert msg.userhash == B1_USERHASH
    assert msg.nonce == B1_NONCE
    assert msg.realm == "example.org"
    assert msg.password_algorithm == (PasswordAlgorithm.SHA256, b"")
    key = long_term_key(USERNAME_2_4, "example.org", PASSWORD_PREPARED, msg.password_algorithm[0])
    assert key == hashlib.sha256(f"{USERNAME_2_4}:example.org:TheMatrIX".encode()).digest()
    assert verify_message_integrity_sha256(msg, key)
    assert not verify_message_integrity(msg, key)  # there is no SHA-1 integrity
    raw_key = long_term_key(
        USERNAME_2_4,
        "example.org",
        PASSWORD_RAW,
        PasswordAlgorithm.SHA256,
        prep=PasswordPrep.SASLPREP,
    )
    assert raw_key == key
    rebuilt = (
        MessageBuilder(Method.BINDING, MessageClass.REQUEST, msg.transaction_id)
        .add(AttributeType.USERHASH, userhash(USERNAME_2_4, "example.org"))
        .add_text(AttributeType.NONCE, B1_NONCE)
        .add_text(AttributeType.REALM, "example.org")
        .add_password_algorithm(PasswordAlgorithmEntry(PasswordAlgorithm.SHA256))
        .encode(integrity_sha256_key=key)
    )
    assert rebuilt == B1_CORRECTED


def test_error_code_reason_phrases() -> None:
    """RFC 8489 §14.8: reason phrases for the codes we send."""
    assert ErrorCode.UNKNOWN_ATTRIBUTE.reason == "Unknown Attribute"
    assert ErrorCode.STALE_NONCE.reason == "Stale Nonce"
