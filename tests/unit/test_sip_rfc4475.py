"""RFC 4475 torture messages: what the parser must accept, and what it must reject.

The valid messages (§3.1.1) are checked byte for byte against the SHA-256 of the
decoded RFC 4475 Appendix A archive, so a transcription slip fails loudly.
§3.1.1.11 (mpart01) carries a binary body that has no faithful text form and
is left out; multipart framing is covered by the body tests in test_sip_message.
"""

import hashlib

import pytest

from peerline.sip import Method, Request, Response, parse_message
from peerline.sip.uri import SipUri


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


SDP_150 = """v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.{h}
s=-
c=IN IP4 192.0.2.{c}
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"""

WSINV = crlf(
    r"""INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

"""
    + SDP_150.format(h=3, c=4)
)

INTMETH = crlf(
    "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/"
    "crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
    "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n"
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
    ";fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\""
    ";tag=_token~1'+`*%!-.\n"
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb\n"
    "Content-Length: 0\n\n"
)

ESC01 = crlf(
    """INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

"""
    + SDP_150.format(h=1, c=1)
)

ESCNULL = crlf("""REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

""")

ESC02 = crlf("""RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

""")

LWSDISP = crlf("""OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

""")

_LONG = "long" * 20
LONGREQ = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    'To: "I have a user name of ' + "extreme" * 10 + ' proportion"'
    "<sip:user@example.com:6000;unknownparam1=very" + _LONG + "value"
    ";longparam" + "name" * 25 + "=shortvalue"
    ";very" + "long" * 25 + "ParameterNameWithNoValue>\n"
    "F: sip:" + "amazinglylongcallername" * 5 + "@example.net"
    ";tag=1" + "298" * 50 + "2424"
    ";unknownheaderparam"
    + "name" * 20
    + "=unknowheaderparam"
    + "value" * 15
    + ";unknownValuelessparam"
    + "nameparam" * 9
    + "name\n"
    "Call-ID: longreq.one" + "really" * 20 + "longcallid\n"
    "CSeq: 3882340 INVITE\n"
    "Unknown-" + "Long" * 20 + "-Name: unknown-" + _LONG + "-value; "
    "unknown-" + _LONG + "-parameter-name = unknown-" + _LONG + "-parameter-value\n"
    "Via: SIP/2.0/TCP sip33.example.com\n"
    "v: SIP/2.0/TCP sip32.example.com\n"
    "V: SIP/2.0/TCP sip31.example.com\n"
    "Via: SIP/2.0/TCP sip30.example.com\n"
    "ViA: SIP/2.0/TCP sip29.example.com\n"
    "VIa: SIP/2.0/TCP sip28.example.com\n"
    "VIA: SIP/2.0/TCP sip27.example.com\n"
    "via: SIP/2.0/TCP sip26.example.com\n"
    "viA: SIP/2.0/TCP sip25.example.com\n"
    "vIa: SIP/2.0/TCP sip24.example.com\n"
    "vIA: SIP/2.0/TCP sip23.example.com\n"
    "V :  SIP/2.0/TCP sip22.example.com\n"
    "v :  SIP/2.0/TCP sip21.example.com\n"
    "V  : SIP/2.0/TCP sip20.example.com\n"
    "v  : SIP/2.0/TCP sip19.example.com\n"
    "Via : SIP/2.0/TCP sip18.example.com\n"
    "Via  : SIP/2.0/TCP sip17.example.com\n"
    + "".join(f"Via: SIP/2.0/TCP sip{n}.example.com\n" for n in range(16, 0, -1))
    + "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5"
    ";branch=very" + "long" * 50 + "branchvalue\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:" + "amazinglylongcallername" * 5 + "@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "l: 150\n\n" + SDP_150.format(h=1, c=1)
)

DBLREQ = crlf("""REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0


INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m =video 3227 RTP/AVP 31
a=rtpmap:31 LPC
""")

SEMIURI = crlf("""OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

""")

TRANSPORTS = crlf("""OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

""")

UNREASON = crlf(
    "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\n"
    """Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"""
)

NOREASON = crlf("""SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

""")
# The archive's dblreq ends with one more CRLF than the RFC text shows.
DBLREQ += b"\r\n"

#: SHA-256 of each RFC 4475 Appendix A member.
ARCHIVE_SHA256 = {
    "wsinv": (WSINV, "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61"),
    "intmeth": (INTMETH, "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d"),
    "esc01": (ESC01, "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e"),
    "escnull": (ESCNULL, "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90"),
    "esc02": (ESC02, "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199"),
    "lwsdisp": (LWSDISP, "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6"),
    "longreq": (LONGREQ, "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa"),
    "dblreq": (DBLREQ, "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef"),
    "semiuri": (SEMIURI, "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2"),
    "transports": (TRANSPORTS, "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc"),
    "unreason": (UNREASON, "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7"),
    "noreason": (NOREASON, "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe"),
}


@pytest.mark.parametrize("name", sorted(ARCHIVE_SHA256))
def test_transcription_matches_the_rfc_archive(name: str) -> None:
    data, digest = ARCHIVE_SHA256[name]
    assert hashlib.sha256(data).hexdigest() == digest


@pytest.mark.parametrize("name", sorted(ARCHIVE_SHA256))
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse_message(ARCHIVE_SHA256[name][0])
    again = parse_message(message.to_bytes())
    assert again == message


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_3_1_1_1_wsinv_short_tortuous_invite() -> None:
    msg = request(WSINV)
    assert msg.method is Method.INVITE
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == "vivekg"
    assert "unknownparam" in msg.uri.params
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (msg.cseq.number, msg.cseq.method) == (9, Method.INVITE)
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.content_type is not None
    assert msg.content_type.essence == "application/sdp"
    (route,) = msg.routes
    assert isinstance(route.uri, SipUri)
    assert route.uri.lr
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params.get("newparam") == "newvalue"
    assert "secondparam" in contact.params
    assert contact.q == pytest.approx(0.33)
    assert len(msg.body) == 150


def test_3_1_1_2_intmeth_wide_range_of_valid_characters() -> None:
    msg = request(INTMETH)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert not isinstance(msg.method, Method)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.params.get("fromParam''~+*_!.-%") == "работающий"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.cseq.number == 139122385
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_3_1_1_3_esc01_valid_use_of_escapes() -> None:
    msg = request(ESC01)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user_unescaped == "sips:user@example.com"
    assert isinstance(msg.to.uri, SipUri)
    assert msg.to.uri.user_unescaped == "user"
    assert isinstance(msg.from_.uri, SipUri)
    assert msg.from_.uri.user_unescaped == "I have spaces"
    (contact,) = msg.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.user_unescaped == "caller"
    # "value%41" stays "value%41": unescaping is never recursive (RFC 3986).
    assert contact.uri.params.get("n%61me") == "v%61lue%25%34%31"
    assert contact.uri.equivalent(SipUri("host5.example.net", "caller", params=contact.uri.params))


def test_3_1_1_4_escnull_escaped_nulls_in_uris() -> None:
    msg = request(ESCNULL)
    assert isinstance(msg.to.uri, SipUri)
    assert msg.to.uri.user_unescaped == "null-\x00-null"
    first, second = msg.contacts
    assert isinstance(first.uri, SipUri)
    assert isinstance(second.uri, SipUri)
    assert not first.uri.equivalent(second.uri)
    assert msg.body == b""


def test_3_1_1_5_esc02_percent_is_not_an_escape_outside_uris() -> None:
    msg = request(ESC02)
    assert msg.method == "RE%47IST%45R"
    assert msg.method != Method.REGISTER
    assert msg.to.display_name == "%Z%45"
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"
    assert len(msg.contacts) == 2
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_3_1_1_6_lwsdisp_no_lws_between_display_name_and_bracket() -> None:
    msg = request(LWSDISP)
    assert msg.from_.display_name == "caller"
    assert msg.from_.tag == "323"


def test_3_1_1_7_longreq_long_values() -> None:
    msg = request(LONGREQ)
    assert msg.to.display_name is not None
    assert msg.to.display_name.endswith("proportion")
    assert isinstance(msg.to.uri, SipUri)
    assert msg.to.uri.port == 6000
    assert len(msg.from_.tag or "") == 155
    vias = msg.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[33].received == "192.0.2.5"
    assert len(msg.body) == 150


def test_3_1_1_8_dblreq_extra_octets_after_the_body_are_ignored() -> None:
    msg = request(DBLREQ)
    assert msg.method is Method.REGISTER
    assert msg.body == b""
    assert b"INVITE" not in msg.to_bytes()


def test_3_1_1_9_semiuri_semicolon_in_the_user_part() -> None:
    msg = request(SEMIURI)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user_unescaped == "user;par=u@example.net"
    assert msg.uri.host == "example.com"
    assert len(msg.uri.params) == 0
    assert msg.option_tags("Accept") == (
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    )


def test_3_1_1_10_transports_every_transport_token() -> None:
    msg = request(TRANSPORTS)
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_3_1_1_12_unreason_utf8_reason_phrase() -> None:
    msg = parse_message(UNREASON)
    assert isinstance(msg, Response)
    assert msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_3_1_1_13_noreason_empty_reason_phrase() -> None:
    msg = parse_message(NOREASON)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (100, "")
