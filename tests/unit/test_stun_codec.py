"""Message codec rules (RFC 8489 §5, §14) beyond the published vectors."""

import hashlib
import hmac
import struct

import pytest

from peerline.stun import (
    AttributeType,
    ChangeRequest,
    EncodeError,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmEntry,
    binding_success,
    comprehension_required_unknown,
    decode_error_code,
    encode,
    encode_address,
    encode_attributes,
    encode_xor_address,
    frame_length,
    is_stun,
    parse,
    verify_fingerprint,
    verify_message_integrity,
    verify_message_integrity_sha256,
)
from peerline.stun.attributes import (
    decode_password_algorithms,
    encode_password_algorithms,
)

TID = bytes(range(12))
KEY = b"secret"


def raw_message(body: bytes, mtype: int = 0x0001, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">HHI", mtype, size, 0x2112A442) + TID + body


def tlv(attr_type: int, value: bytes) -> bytes:
    return struct.pack(">HH", attr_type, len(value)) + value + bytes(-len(value) % 4)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x00\x00",
        raw_message(b"")[:19],
        b"\x40" + raw_message(b"")[1:],  # leading bits not zero (RFC 8489 §5)
        raw_message(b"")[:4] + b"\x21\x12\xa4\x43" + TID,  # bad cookie
        raw_message(b"", length=4),  # length larger than the data
        raw_message(b"\x00" * 4, length=0),  # trailing bytes beyond length
        raw_message(b"\x00\x06\x00\x01ab", length=6),  # length not a multiple of 4
        raw_message(b"\x00\x06\x00\x09abcd"),  # attribute overruns the message
        raw_message(b"\x00\x06\x00\x05abcde\x00\x00"),  # padding missing at the end
        raw_message(tlv(0x8028, b"\x00" * 8)),  # FINGERPRINT not 4 bytes
        raw_message(tlv(0x8028, b"\x00" * 4) + tlv(0x8022, b"x")),  # FINGERPRINT not last
        raw_message(tlv(0x0008, b"\x00" * 16)),  # MESSAGE-INTEGRITY not 20 bytes
        raw_message(tlv(0x001C, b"\x00" * 12)),  # MESSAGE-INTEGRITY-SHA256 too short
        raw_message(tlv(0x001C, b"\x00" * 18)),  # ... not a multiple of 4
    ],
)
def test_malformed_messages_raise_one_error(data: bytes) -> None:
    """RFC 8489 §5 and §14: framing violations are MalformedMessage, nothing else."""
    with pytest.raises(MalformedMessage):
        parse(data)


def test_method_and_class_bits_round_trip() -> None:
    """RFC 8489 §5: class bits interleaved with the 12-bit method."""
    for method, klass, mtype in [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.SUCCESS, 0x0101),
        (Method.BINDING, MessageClass.ERROR, 0x0111),
        (Method.SEND, MessageClass.INDICATION, 0x0016),
        (Method.ALLOCATE, MessageClass.ERROR, 0x0113),
        (0xFFF, MessageClass.ERROR, 0x3FFF),
    ]:
        msg = parse(Message(method, klass, TID).raw)
        assert struct.unpack(">H", msg.raw[:2])[0] == mtype
        assert (msg.method, msg.message_class) == (method, klass)
    assert parse(raw_message(b"", mtype=0x0002)).method == 2  # unknown methods still parse


def test_unknown_attributes_are_kept_and_reported() -> None:
    """RFC 8489 §14: unknown attributes kept verbatim; the required ones listed for 420."""
    body = tlv(0x7F01, b"\x01\x02\x03") + tlv(0xC001, b"opt") + tlv(0x0006, b"user")
    msg = parse(raw_message(body))
    assert msg.get(0x7F01) == b"\x01\x02\x03"
    assert comprehension_required_unknown(msg) == [0x7F01]
    assert encode(msg) == raw_message(body)
    assert msg.types() == [0x7F01, 0xC001, AttributeType.USERNAME]
    assert msg.attributes[2] == (AttributeType.USERNAME, b"user")
    assert AttributeType.USERNAME in msg
    assert [a.type for a in msg] == msg.types()


def test_attributes_after_integrity_are_ignored() -> None:
    """RFC 8489 §14.5/14.6: only MI-SHA256 and FINGERPRINT count after MESSAGE-INTEGRITY."""
    signed = MessageBuilder(Method.BINDING, MessageClass.REQUEST, TID).add_text(
        AttributeType.USERNAME, "alice"
    )
    data = bytearray(signed.encode(integrity_key=KEY))
    data += tlv(0x8022, b"injected")
    struct.pack_into(">H", data, 2, len(data) - 20)
    msg = parse(data)
    assert msg.software is None
    assert verify_message_integrity(msg, KEY)
    sha_first = signed.encode(integrity_sha256_key=KEY, integrity_key=None)
    late_mi = bytearray(sha_first) + tlv(0x0008, b"\x00" * 20)
    struct.pack_into(">H", late_mi, 2, len(late_mi) - 20)
    msg = parse(late_mi)
    assert AttributeType.MESSAGE_INTEGRITY not in msg
    assert verify_message_integrity_sha256(msg, KEY)


def test_integrity_order_and_both_algorithms() -> None:
    """RFC 8489 §14.5-14.7: MI, then MI-SHA256, then FINGERPRINT, each verifiable."""
    data = (
        MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST, TID)
        .add_text(AttributeType.USERNAME, "alice")
        .encode(integrity_key=KEY, integrity_sha256_key=KEY, fingerprint=True)
    )
    msg = parse(data)
    assert msg.types()[-3:] == [0x0008, 0x001C, 0x8028]
    assert verify_message_integrity(msg, KEY)
    assert verify_message_integrity_sha256(msg, KEY)
    assert verify_fingerprint(msg)
    assert not verify_message_integrity_sha256(msg, b"other")
    flipped = bytearray(data)
    flipped[25] ^= 1
    bad = parse(flipped)
    assert not verify_message_integrity(bad, KEY)
    assert not verify_fingerprint(bad)
    assert (
        encode(msg.without_integrity(), integrity_key=KEY)
        == parse(
            MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST, TID)
            .add_text(AttributeType.USERNAME, "alice")
            .encode(integrity_key=KEY)
        ).raw
    )


def test_truncated_sha256_integrity() -> None:
    """RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256 may be cut to 16 bytes or more, by 4."""
    base = bytearray(raw_message(tlv(0x0006, b"bob")))
    struct.pack_into(">H", base, 2, len(base) - 20 + 20)
    mac = hmac.new(KEY, bytes(base), hashlib.sha256).digest()[:16]
    msg = parse(bytes(base) + tlv(0x001C, mac))
    assert verify_message_integrity_sha256(msg, KEY)


def test_is_stun_demultiplexes() -> None:
    """RFC 7983 / RFC 8489 §5: cheap test to tell STUN from ChannelData, RTP, QUIC."""
    good = Message(Method.BINDING, MessageClass.REQUEST, TID).raw
    assert is_stun(good)
    assert is_stun(memoryview(good))
    assert not is_stun(b"\x40\x00\x00\x04abcd" + bytes(12))  # ChannelData
    assert not is_stun(b"\x80" + good[1:])  # RTP / QUIC long header
    assert not is_stun(good + b"\x00\x00\x00\x00")  # length does not match
    assert not is_stun(good[:19])


def test_frame_length_for_streams() -> None:
    """RFC 8489 §6.2.2: over TCP the header's length delimits the message."""
    data = MessageBuilder(Method.BINDING, MessageClass.REQUEST, TID).add_u32(0x0024, 7).encode()
    assert frame_length(data[:3]) is None
    assert frame_length(data[:4]) == len(data)
    with pytest.raises(MalformedMessage):
        frame_length(b"\x40\x00\x00\x00")


@pytest.mark.parametrize(
    ("address", "family"),
    [
        (("192.0.2.1", 3478), 1),
        (("2001:db8::1", 65535), 2),
        (("::ffff:192.0.2.7", 1), 1),  # dual-stack socket view of an IPv4 peer
        (("fe80::1%eth0", 9), 2),  # scope dropped
    ],
)
def test_addresses_ipv4_ipv6(address: tuple[str, int], family: int) -> None:
    """RFC 8489 §14.1/14.2 and RFC 5780 §7.3/7.4: every address attribute, both families."""
    builder = MessageBuilder(Method.BINDING, MessageClass.SUCCESS, TID)
    for attr in (
        AttributeType.MAPPED_ADDRESS,
        AttributeType.ALTERNATE_SERVER,
        AttributeType.RESPONSE_ORIGIN,
        AttributeType.OTHER_ADDRESS,
    ):
        builder.add_address(attr, address)
    for attr in (
        AttributeType.XOR_MAPPED_ADDRESS,
        AttributeType.XOR_PEER_ADDRESS,
        AttributeType.XOR_RELAYED_ADDRESS,
    ):
        builder.add_xor_address(attr, address)
    msg = parse(builder.encode())
    ip = address[0].partition("%")[0].removeprefix("::ffff:")
    expected = (ip, address[1])
    assert msg.mapped_address == expected
    assert msg.alternate_server == expected
    assert msg.response_origin == expected
    assert msg.other_address == expected
    assert msg.xor_mapped_address == expected
    assert msg.xor_peer_addresses == [expected]
    assert msg.xor_relayed_address == expected
    assert msg.xor_mapped_address is not None
    assert msg.xor_mapped_address.family == family


@pytest.mark.parametrize("address", [("not-an-ip", 1), ("1.2.3", 1), ("1.2.3.4", 70000)])
def test_bad_addresses_are_refused_when_encoding(address: tuple[str, int]) -> None:
    with pytest.raises(EncodeError):
        encode_address(address)
    with pytest.raises(EncodeError):
        encode_xor_address(address, TID)


def test_malformed_attribute_values_raise_on_access() -> None:
    """Values are decoded lazily; a bad one raises MalformedMessage when read."""
    body = (
        tlv(0x0020, b"\x00\x03\x00\x00abcd")  # unknown family
        + tlv(0x0009, b"\x00\x00\x02\x00")  # class 2
        + tlv(0x0006, b"\xff\xfe")  # not UTF-8
        + tlv(0x0024, b"\x00")  # PRIORITY of 1 byte
        + tlv(0x000A, b"\x00")  # odd UNKNOWN-ATTRIBUTES
        + tlv(0x001E, b"short")  # USERHASH not 32 bytes
    )
    msg = parse(raw_message(body))
    for name in (
        "xor_mapped_address",
        "error_code",
        "username",
        "priority",
        "unknown_attributes",
        "userhash",
    ):
        with pytest.raises(MalformedMessage):
            getattr(msg, name)


def test_typed_attributes_round_trip() -> None:
    """ERROR-CODE, UNKNOWN-ATTRIBUTES, CHANGE-REQUEST, RESPONSE-PORT, ICE and TURN values."""
    algorithms = [
        PasswordAlgorithmEntry(PasswordAlgorithm.SHA256),
        PasswordAlgorithmEntry(PasswordAlgorithm.MD5),
    ]
    msg = (
        MessageBuilder(Method.BINDING, MessageClass.ERROR, TID)
        .add_error_code(ErrorCode.UNKNOWN_ATTRIBUTE)
        .add_unknown_attributes([0x7F01, 0x0002, 0x0003])
        .add_change_request(ChangeRequest(change_ip=True, change_port=False))
        .add_port(AttributeType.RESPONSE_PORT, 5000)
        .add_port(AttributeType.CHANNEL_NUMBER, 0x4001)
        .add_u32(AttributeType.PRIORITY, 0x7E0000FF)
        .add(AttributeType.USE_CANDIDATE)
        .add_u64(AttributeType.ICE_CONTROLLING, 2**64 - 1)
        .add_u32(AttributeType.LIFETIME, 600)
        .add(AttributeType.REQUESTED_TRANSPORT, bytes((17, 0, 0, 0)))
        .add(AttributeType.DATA, b"payload")
        .add_text(AttributeType.SOFTWARE, "peerline")
        .add_text(AttributeType.ALTERNATE_DOMAIN, "stun.example.org")
        .add_password_algorithms(algorithms)
        .build()
    )
    assert msg.error_code == (420, "Unknown Attribute")
    assert msg.error_code is not None
    assert msg.error_code.code is ErrorCode.UNKNOWN_ATTRIBUTE
    assert msg.unknown_attributes == [0x7F01, 2, 3]
    assert msg.change_request == ChangeRequest(change_ip=True)
    assert msg.response_port == 5000
    assert msg.channel_number == 0x4001
    assert msg.priority == 0x7E0000FF
    assert msg.use_candidate
    assert msg.ice_controlling == 2**64 - 1
    assert msg.ice_controlled is None
    assert msg.lifetime == 600
    assert msg.requested_transport == 17
    assert msg.data == b"payload"
    assert msg.software == "peerline"
    assert msg.alternate_domain == "stun.example.org"
    assert msg.password_algorithms == algorithms
    assert msg.password_algorithm is None
    assert decode_error_code(b"\x00\x00\x05\x00") == (500, "")
    assert decode_error_code(b"\x00\x00\x06\x63oops") == (699, "oops")


def test_password_algorithms_keep_unknown_parameters() -> None:
    """RFC 8489 §14.11: parameters are padded to 4 bytes; unknown algorithms kept."""
    entries = [PasswordAlgorithmEntry(0x7777, b"abc"), PasswordAlgorithmEntry(2)]
    value = encode_password_algorithms(entries)
    assert value == bytes.fromhex("77770003 61626300 00020000")
    assert decode_password_algorithms(value) == entries
    with pytest.raises(MalformedMessage):
        decode_password_algorithms(bytes.fromhex("0002ffff"))


def test_binding_success_fast_path_matches_the_builder() -> None:
    """The hot path builds exactly what the general builder builds."""
    extra = encode_attributes([(AttributeType.SOFTWARE, b"peerline")])
    for address in [("198.51.100.4", 40000), ("2001:db8::77", 3478)]:
        fast = binding_success(TID, address, extra=extra, integrity_key=KEY, fingerprint=True)
        slow = (
            MessageBuilder(Method.BINDING, MessageClass.SUCCESS, TID)
            .add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, address)
            .add_text(AttributeType.SOFTWARE, "peerline")
            .encode(integrity_key=KEY, fingerprint=True)
        )
        assert fast == slow
        assert parse(binding_success(TID, address)).xor_mapped_address == address
    with pytest.raises(EncodeError):
        binding_success(TID[:11], ("192.0.2.1", 1))
    with pytest.raises(EncodeError):
        binding_success(TID, ("192.0.2.1", 1), extra=b"abc")


def test_response_to_copies_method_and_transaction() -> None:
    request = parse(Message(Method.ALLOCATE, MessageClass.REQUEST, TID).raw)
    reply = MessageBuilder.response_to(request, error=True).add_error_code(401).build()
    assert (reply.method, reply.message_class, reply.transaction_id) == (
        Method.ALLOCATE,
        MessageClass.ERROR,
        TID,
    )
    assert reply.error_code == (401, "Unauthenticated")


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(EncodeError):
        Message(Method.BINDING, MessageClass.REQUEST, b"short")
    with pytest.raises(EncodeError):
        Message(Method.BINDING, MessageClass.REQUEST, TID, [(0x8022, b"x" * 70000)])
    with pytest.raises(EncodeError):
        Message(0x1000, MessageClass.REQUEST, TID)
    with pytest.raises(EncodeError):
        MessageBuilder(Method.BINDING, MessageClass.REQUEST, TID).add_error_code(200)
