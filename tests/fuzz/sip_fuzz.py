"""Fuzz the SIP parser, the stream framer and the SIP element.

Two rules, checked on every input:

- the parser: any bytes either parse into a message that serializes and parses
  back to the same bytes, or raise `MalformedMessage` (and building the 400 for
  that error never fails); the framer yields events or raises `MalformedMessage`;
- the element (registrar + proxy) fed the same bytes over UDP and TCP never lets
  any exception out: a server fed garbage keeps serving.

`python -m tests.fuzz.sip_fuzz [N]` runs N mutated inputs (default 200,000); with
atheris installed, `python -m tests.fuzz.sip_fuzz --atheris` hands the parser
target to libFuzzer instead. The suite runs a short, seeded pass of this loop.
"""

from __future__ import annotations

import contextlib
import random
import sys

from peerline.sip import MalformedMessage, Request, error_response, parse_message
from peerline.sip.element import ElementConfig, SipElement
from peerline.sip.flow import Flow
from peerline.sip.framing import MessageBytes, StreamFramer
from peerline.sip.message import HeaderFields
from peerline.sip.methods import Transport
from peerline.users import User, UserDirectory
from tests.fuzz.fuzzing import inputs, main, mutate_bytes
from tests.unit.test_sip_rfc4475 import ARCHIVE_SHA256
from tests.unit.test_sip_rfc4475_invalid import ACCEPTED, INVALID

_PROPERTIES = [name for name, value in vars(HeaderFields).items() if isinstance(value, property)]
_OPTION_HEADERS = ("Require", "Supported", "Proxy-Require", "Unsupported")
_AUTH_HEADERS = ("Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate")
SERVER = ("192.0.2.1", 5060)
CLIENT = ("198.51.100.7", 5062)

_REGISTER = (
    "REGISTER sip:example.test SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-reg1;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.test>;tag=r1\r\n"
    "To: <sip:alice@example.test>\r\n"
    "Call-ID: reg-1@198.51.100.7\r\n"
    "CSeq: 2 REGISTER\r\n"
    'Contact: <sip:alice@10.0.0.2:5062;ob>;+sip.instance="<urn:uuid:1>";reg-id=1;q=0.5\r\n'
    "Supported: outbound, path\r\n"
    "Path: <sip:edge.example.test;lr;ob>\r\n"
    'Authorization: Digest username="alice", realm="example.test", nonce="bm9uY2U",'
    ' uri="sip:example.test", response="0123456789abcdef0123456789abcdef",'
    ' algorithm=MD5, cnonce="c0ffee", nc=00000001, qop=auth, opaque="x"\r\n'
    "Expires: 600\r\n"
    "Content-Length: 0\r\n\r\n"
)
_INVITE = (
    "INVITE sip:alice@example.test SIP/2.0\r\n"
    "v: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-inv1;rport\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Carol \\"C\\"" <sip:carol@other.test>;tag=c1\r\n'
    "t: <sip:alice@example.test>\r\n"
    "i: inv-1@203.0.113.5\r\n"
    "CSeq: 1 INVITE\r\n"
    "m: <sip:carol@[2001:db8::5]:5060;transport=tcp>\r\n"
    "Route: <sip:example.test;lr>, <sip:192.0.2.1:5060;lr>\r\n"
    "Record-Route: <sips:proxy.other.test;lr>\r\n"
    "c: application/sdp\r\n"
    "Content-Length: 5\r\n\r\nv=0\r\n"
)
_RESPONSE = (
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-pl0-x, "
    "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-inv1;received=203.0.113.5;rport=5060\r\n"
    "From: <sip:carol@other.test>;tag=c1\r\n"
    "To: <sip:alice@example.test>;tag=a1\r\n"
    "Call-ID: inv-1@203.0.113.5\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n\r\n"
)
_MESSAGE = (
    "MESSAGE tel:+1-201-555-0123;phone-context=example.test SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bK-msg1\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.test>;tag=m1\r\n"
    "To: <tel:+1-201-555-0123>\r\n"
    "Call-ID: msg-1\r\n"
    "CSeq: 1 MESSAGE\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 2\r\n\r\nhi"
)


def seeds() -> list[bytes]:
    """Valid and invalid messages of every shape, to mutate: ours and RFC 4475's."""
    ours = [text.encode() for text in (_REGISTER, _INVITE, _RESPONSE, _MESSAGE)]
    torture = [data for data, _ in ARCHIVE_SHA256.values()]
    invalid = [value[0] if isinstance(value, tuple) else value for value in INVALID.values()]
    accepted = [value.replace("\n", "\r\n").encode() for value in ACCEPTED.values()]
    return ours + torture + [v for v in invalid if isinstance(v, bytes)] + accepted


def _read_everything(message: HeaderFields) -> None:
    """Every typed reader, each allowed to find a header bad (they read lazily)."""
    for name in _PROPERTIES:
        with contextlib.suppress(MalformedMessage):
            getattr(message, name)
    for name in _OPTION_HEADERS:
        with contextlib.suppress(MalformedMessage):
            message.option_tags(name)
    for name in _AUTH_HEADERS:
        with contextlib.suppress(MalformedMessage):
            message.auth_fields(name)


def parse_target(data: bytes) -> bool:
    """One input for the parser and framer; True when it parsed as a message.
    Anything but MalformedMessage propagates; so does a failed round trip."""
    framer = StreamFramer()
    framer.receive_data(data)
    with contextlib.suppress(MalformedMessage):
        while (event := framer.next_event()) is not None:
            if isinstance(event, MessageBytes):
                with contextlib.suppress(MalformedMessage):
                    parse_message(event.data)
    try:
        message = parse_message(data)
    except MalformedMessage as error:
        refusal = error_response(error)
        if refusal is not None:
            refusal.to_bytes()
        return False
    _read_everything(message)
    wire = message.to_bytes()
    again = parse_message(wire)
    if again.to_bytes() != wire:
        raise AssertionError(f"round trip changed the message: {data!r}")
    if isinstance(message, Request) != isinstance(again, Request):
        raise AssertionError(f"round trip changed the kind of message: {data!r}")
    return True


class ElementTarget:
    """One element that every input is fed to, over UDP and over one TCP connection,
    with time moving on so that its timers and housekeeping run too."""

    def __init__(self) -> None:
        users = UserDirectory([User("alice", "wonderland"), User("bob", "builder")])
        config = ElementConfig(domain="example.test", realm="example.test", secret=b"f" * 32)
        self.now = 1000.0
        listeners = [(Transport.UDP, SERVER), (Transport.TCP, SERVER)]
        self.element = SipElement(config, users, listeners, self.now)
        self.udp = Flow(Transport.UDP, SERVER, CLIENT)
        self.tcp = Flow(Transport.TCP, SERVER, CLIENT, 1)
        self.element.connection_opened(self.tcp)
        self.sent = 0

    def __call__(self, data: bytes) -> None:
        element = self.element
        self.now += 0.01
        element.receive(data, self.udp, self.now)
        element.receive(data, self.tcp, self.now)
        if element.get_timer() is not None:
            element.handle_timer(self.now)
        self.sent += len(element.take_sends())

    def finish(self) -> None:
        """Run every timer out: the element ends with nothing left to do."""
        for _ in range(400):
            self.now += 1.0
            self.element.handle_timer(self.now)
            self.element.take_sends()


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Truncate, flip bits, overwrite or insert bytes, splice in SIP punctuation,
    or cut and duplicate whole lines."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(7)
        if how == 3:
            junk = rng.choice(
                [b";", b",", b":", b"<", b">", b'"', b"\\", b"\r\n", b" ", b"%", b"["]
            )
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = junk * rng.randint(1, 3)
        elif how == 4:
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines))
                if rng.random() < 0.5:
                    del lines[i]
                else:
                    lines.insert(rng.randrange(1, len(lines)), lines[i])
                buf = bytearray(b"\r\n".join(lines))
        elif how == 5:
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = str(rng.choice([0, 1, 65535, 65536, 2**32, 10**30])).encode()
        else:
            mutate_bytes(rng, buf, how)
    return bytes(buf)


def run(count: int, seed: int = 0) -> tuple[int, ElementTarget]:
    """Run `count` inputs through the parser and the element. Returns how many
    parsed, and the element (to check it still serves)."""
    element = ElementTarget()
    parsed = 0
    for data in inputs(count, seed, seeds(), mutate, 80):
        parsed += parse_target(data)
        element(data)
    element.finish()
    return parsed, element


if __name__ == "__main__":
    main(sys.argv[1:], parse_target, lambda count, seed: run(count, seed)[0], 200_000)
