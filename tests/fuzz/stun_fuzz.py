"""Fuzz the STUN parser: every input parses or raises MalformedMessage.

`python -m tests.fuzz.stun_fuzz [N]` runs N mutated inputs (default 1,000,000);
with atheris installed, `python -m tests.fuzz.stun_fuzz --atheris` hands the same
target to libFuzzer instead. The suite runs a short, seeded pass of this loop.
"""

from __future__ import annotations

import contextlib
import random
import struct
import sys

from peerline.stun import (
    AttributeType,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    is_stun,
    parse,
    verify_fingerprint,
    verify_message_integrity,
    verify_message_integrity_sha256,
)
from tests.fuzz.fuzzing import inputs, main, mutate_bytes

_PROPERTIES = [
    name
    for name, value in vars(Message).items()
    if isinstance(value, property) and name not in ("raw", "attributes")
]


def target(data: bytes) -> bool:
    """One input; True when it parsed. Anything but MalformedMessage propagates."""
    is_stun(data)
    try:
        msg = parse(data)
    except MalformedMessage:
        return False
    for name in _PROPERTIES:
        with contextlib.suppress(MalformedMessage):
            getattr(msg, name)
    verify_message_integrity(msg, b"k")
    verify_message_integrity_sha256(msg, b"k")
    verify_fingerprint(msg)
    return True


def seeds() -> list[bytes]:
    """Valid messages with every kind of attribute and trailer, to mutate."""
    tid = bytes(range(12))
    full = (
        MessageBuilder(Method.BINDING, MessageClass.SUCCESS, tid)
        .add_xor_address(AttributeType.XOR_MAPPED_ADDRESS, ("192.0.2.1", 32853))
        .add_xor_address(AttributeType.XOR_PEER_ADDRESS, ("2001:db8::1", 1))
        .add_address(AttributeType.OTHER_ADDRESS, ("2001:db8::2", 3479))
        .add_error_code(420)
        .add_unknown_attributes([0x7777])
        .add_text(AttributeType.SOFTWARE, "fuzz")
        .add_u32(AttributeType.PRIORITY, 1)
        .add_u64(AttributeType.ICE_CONTROLLING, 2)
        .add(AttributeType.PASSWORD_ALGORITHMS, bytes.fromhex("00020000"))
        .add(AttributeType.CHANGE_REQUEST, bytes(4))
    )
    return [
        full.encode(integrity_key=b"k", integrity_sha256_key=b"k", fingerprint=True),
        full.encode(),
        MessageBuilder(Method.BINDING, MessageClass.REQUEST, tid).encode(fingerprint=True),
    ]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Truncate, flip bits, overwrite bytes, or lie in a length field."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(5)
        if how == 3 and len(buf) >= 4:
            pos = rng.randrange(0, len(buf) - 3) & ~3 if rng.random() < 0.5 else 2
            struct.pack_into(">H", buf, pos + 2 if pos >= 20 else 2, rng.randrange(0x10000))
        else:
            mutate_bytes(rng, buf, how)
    return bytes(buf)


def run(count: int, seed: int = 0) -> int:
    """Run `count` inputs; returns how many parsed."""
    return sum(target(data) for data in inputs(count, seed, seeds(), mutate, 64))


if __name__ == "__main__":
    main(sys.argv[1:], target, run, 1_000_000)
