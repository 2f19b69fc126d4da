"""SIP, SIPS and tel URIs: parsing, printing, and RFC 3261 §19.1.4 equivalence."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.sip import MalformedMessage, SipUri, TelUri, parse_uri
from peerline.sip._syntax import Params
from peerline.sip.uri import AbsoluteUri, escape, unescape

# RFC 3261 §19.1.4: pairs that are equivalent, and pairs that are not.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:[2001:db8::10]:5070", "sip:[2001:DB8:0:0::10]:5070"),
    ("tel:+1-201-555-0123", "tel:+12015550123"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:a%3Bb@h", "sip:a;b@h"),  # an escaped reserved character is not the character
    ("tel:+12015550123", "sip:+12015550123@h"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_uris(left: str, right: str) -> None:
    a, b = parse_uri(left), parse_uri(right)
    assert a.equivalent(b)
    assert b.equivalent(a)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_uris(left: str, right: str) -> None:
    a, b = parse_uri(left), parse_uri(right)
    assert not a.equivalent(b)
    assert not b.equivalent(a)


def test_components() -> None:
    uri = parse_uri("sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr;ob?h=v")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.port) == ("sips", "alice", "pw", 5061)
    assert uri.host == "[2001:db8::1]"
    assert uri.host_address == "2001:db8::1"
    assert (uri.transport, uri.lr, uri.ob, uri.maddr) == ("tcp", True, True, None)
    assert uri.headers == (("h", "v"),)
    assert str(uri) == "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr;ob?h=v"


def test_tel_uris() -> None:
    uri = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(uri, TelUri)
    assert not uri.is_global
    assert str(uri) == "tel:7042;phone-context=example.com"
    with pytest.raises(MalformedMessage, match="phone-context"):
        parse_uri("tel:7042")


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:@host",
        "sip:host:99999",
        "sip:host:",
        "sip:a b",
        "sip:[::1",
        "sip:[not-v6]",
        "sip:host;=x",
        "sip:host;a=",
        "sip:%zz@h",
        "sip:h?noequals",
        "sip:bad..host",
        "tel:+",
        "tel:abc-xyz",
        "nocolon",
        "1sip:x",
        "urn:",
    ],
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_uri(text)


def test_escape_and_unescape() -> None:
    assert escape("a b@c") == "a%20b%40c"
    assert unescape("a%20b%40c") == "a b@c"
    assert unescape("null-%00") == "null-\x00"
    assert unescape(escape("ünï")) == "ünï"


def test_unknown_schemes_are_opaque() -> None:
    assert parse_uri("urn:uuid:f81d4fae") == AbsoluteUri("urn", "uuid:f81d4fae")
    assert str(parse_uri("http://example.com/x")) == "http://example.com/x"


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.lists(_labels, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
_user = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12).map(escape)
_token = st.from_regex(r"[A-Za-z0-9\-_.!~*']{1,10}", fullmatch=True)
_params = st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3).map(Params)
_headers = st.lists(st.tuples(_token, _token), max_size=2).map(tuple)


@given(
    host=_hosts,
    user=st.one_of(st.none(), _user),
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=_params,
    headers=_headers,
    secure=st.booleans(),
)
def test_generated_sip_uris_round_trip(
    host: str,
    user: str | None,
    port: int | None,
    params: Params,
    headers: tuple[tuple[str, str], ...],
    secure: bool,
) -> None:
    uri = SipUri(host, user, None, port, params, headers, secure)
    parsed = parse_uri(str(uri))
    assert parsed == uri
    assert parsed.equivalent(uri)


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_malformed(text: str) -> None:
    try:
        uri = parse_uri(text)
    except MalformedMessage:
        return
    assert parse_uri(str(uri)).equivalent(uri)
