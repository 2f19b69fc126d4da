"""Property tests: the parser's one rule, and encode/parse round trips.

Any input either parses or raises `MalformedMessage` (STYLE: parsers are fuzzed
with one rule); reading any attribute of a parsed message obeys the same rule.
"""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerline.stun import (
    AttributeType,
    ChangeRequest,
    MessageBuilder,
    MessageClass,
    PasswordAlgorithmEntry,
    encode,
    parse,
    verify_fingerprint,
    verify_message_integrity,
    verify_message_integrity_sha256,
)
from tests.fuzz.stun_fuzz import target


def parse_or_malformed(data: bytes) -> None:
    """Parse, then read every accessor and check every trailer; re-encoding is exact."""
    if target(data):
        assert encode(parse(data)) == data


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_malformed(data: bytes) -> None:
    """RFC 8489 §5: arbitrary bytes never escape with another exception."""
    parse_or_malformed(data)


tlvs = st.lists(
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)).map(
        lambda tv: struct.pack(">HH", tv[0], len(tv[1])) + tv[1] + bytes(-len(tv[1]) % 4)
    ),
    max_size=8,
)


@settings(max_examples=500)
@given(st.integers(0, 0x3FFF), st.binary(min_size=12, max_size=12), tlvs)
def test_well_framed_attribute_soup(mtype: int, tid: bytes, parts: list[bytes]) -> None:
    """Valid header and TLV framing, random types and values: values may be bad,
    but only MalformedMessage says so."""
    body = b"".join(parts)
    data = struct.pack(">HHI", mtype, len(body), 0x2112A442) + tid + body
    parse_or_malformed(data)


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
addresses = st.tuples(ipv4 | ipv6, st.integers(0, 0xFFFF))
text = st.text(max_size=30)


@st.composite
def builders(draw: st.DrawFn) -> tuple[MessageBuilder, list[tuple[str, object]]]:
    """A message with attributes of every kind, and what each should read back as."""
    builder = MessageBuilder(
        draw(st.integers(0, 0xFFF)),
        draw(st.sampled_from(list(MessageClass))),
        draw(st.binary(min_size=12, max_size=12)),
    )
    expect: list[tuple[str, object]] = []
    for kind in draw(st.lists(st.integers(0, 9), max_size=8, unique=True)):
        if kind == 0:
            a = draw(addresses)
            builder.add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, a)
            expect.append(("xor_mapped_address", a))
        elif kind == 1:
            a = draw(addresses)
            builder.add_address(AttributeType.OTHER_ADDRESS, a)
            expect.append(("other_address", a))
        elif kind == 2:
            code, reason = draw(st.integers(300, 699)), draw(text)
            builder.add_error_code(code, reason)
            expect.append(("error_code", (code, reason)))
        elif kind == 3:
            types = draw(st.lists(st.integers(0, 0xFFFF), max_size=5))
            builder.add_unknown_attributes(types)
            expect.append(("unknown_attributes", types))
        elif kind == 4:
            flags = ChangeRequest(draw(st.booleans()), draw(st.booleans()))
            builder.add_change_request(flags)
            expect.append(("change_request", flags))
        elif kind == 5:
            name = draw(text)
            builder.add_text(AttributeType.USERNAME, name)
            expect.append(("username", name))
        elif kind == 6:
            prio = draw(st.integers(0, 2**32 - 1))
            builder.add_u32(AttributeType.PRIORITY, prio)
            expect.append(("priority", prio))
        elif kind == 7:
            tie = draw(st.integers(0, 2**64 - 1))
            builder.add_u64(AttributeType.ICE_CONTROLLED, tie)
            expect.append(("ice_controlled", tie))
        elif kind == 8:
            entries = [
                PasswordAlgorithmEntry(alg, params)
                for alg, params in draw(
                    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=6)), max_size=3)
                )
            ]
            builder.add_password_algorithms(entries)
            expect.append(("password_algorithms", entries))
        else:
            attr_type, value = draw(st.integers(0xC000, 0xFFFF)), draw(st.binary(max_size=20))
            builder.add(attr_type, value)
            expect.append((f"get:{attr_type}", value))
    return builder, expect


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(builders(), st.booleans(), st.booleans(), st.booleans())
def test_encode_parse_round_trip(
    built: tuple[MessageBuilder, list[tuple[str, object]]],
    mi: bool,
    mi256: bool,
    fp: bool,
) -> None:
    """Everything encoded reads back equal; integrity and fingerprint verify."""
    builder, expect = built
    data = builder.encode(
        integrity_key=b"key" if mi else None,
        integrity_sha256_key=b"key" if mi256 else None,
        fingerprint=fp,
    )
    msg = parse(data)
    assert (msg.method, msg.message_class, msg.transaction_id) == (
        builder.method,
        builder.message_class,
        builder.transaction_id,
    )
    for name, value in expect:
        if name.startswith("get:"):
            assert msg.get(int(name[4:])) == value
        else:
            assert getattr(msg, name) == value
    assert verify_message_integrity(msg, b"key") is mi
    assert verify_message_integrity_sha256(msg, b"key") is mi256
    assert verify_fingerprint(msg) is fp
    assert parse(encode(msg.without_integrity())) == builder.build()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    builder, _ = draw(builders())
    data = bytearray(builder.encode(integrity_key=b"k", fingerprint=draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.integers(0, 3))
        if how == 0 and data:  # truncate
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif how == 1 and data:  # flip a bit
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == 2 and len(data) >= 4:  # lie in the message length
            struct.pack_into(">H", data, 2, draw(st.integers(0, 0xFFFF)))
        elif how == 3 and len(data) >= 24:  # lie in an attribute length
            struct.pack_into(">H", data, 22, draw(st.integers(0, 0xFFFF)))
    return bytes(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_parse_or_raise_malformed(data: bytes) -> None:
    """Truncation, bit flips and length lies never raise anything else."""
    parse_or_malformed(data)
