"""A bounded, seeded fuzz run of the SIP parser, framer and element (the long run:
sip_fuzz.py)."""

from peerline.sip import Response, parse_message
from peerline.sip.flow import Flow
from peerline.sip.methods import Transport
from tests.fuzz.sip_fuzz import SERVER, run

OPTIONS = (
    b"OPTIONS sip:example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.99:5060;branch=z9hG4bK-after;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:probe@other.test>;tag=p\r\n"
    b"To: <sip:example.test>\r\n"
    b"Call-ID: after-the-fuzz\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_30k_mutated_inputs_parse_or_raise_malformed_and_the_element_keeps_serving() -> None:
    """30,000 inputs; only MalformedMessage may stop a parse, nothing may escape the
    element (STYLE practice 7), and afterwards the element still answers."""
    parsed, target = run(30_000, seed=3261)
    assert 0 < parsed < 30_000  # the mutations reach both outcomes
    element = target.element
    assert element.counters["malformed"] > 0
    assert target.sent > 0
    element.receive(OPTIONS, Flow(Transport.UDP, SERVER, ("198.51.100.99", 5060)), target.now)
    answers = [parse_message(send.data) for send in element.take_sends()]
    assert [a.status for a in answers if isinstance(a, Response)] == [200]
