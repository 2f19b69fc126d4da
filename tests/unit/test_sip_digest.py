"""Digest authentication: RFC 2617 §3.5 and RFC 7616 §3.9.1 vectors, then the
stateless server: nonces that expire, forged nonces, unknown users, HA1."""

import pytest

from peerline.sip import MalformedMessage, Request, parse_message
from peerline.sip.digest import (
    Algorithm,
    DigestChallenge,
    DigestCredentials,
    DigestServer,
    NonceCheck,
    Verdict,
    answer_challenge,
    compute_ha1,
    compute_response,
    parse_algorithm,
)
from peerline.sip.fields import parse_auth

SECRET = b"0123456789abcdef0123456789abcdef"


def test_rfc2617_section_3_5_example() -> None:
    challenge = DigestChallenge.from_field(
        parse_auth(
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        )
    )
    assert challenge.algorithm is Algorithm.MD5  # absent means MD5
    answer = answer_challenge(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert answer.response == "6629fae49393a05397450978507c4ef1"
    assert answer.nc == "00000001"
    assert answer.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    parsed = DigestCredentials.from_field(parse_auth(answer.to_header_value()))
    assert parsed == answer


RFC7616 = {
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        (Algorithm.SHA_256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: Algorithm, response: str) -> None:
    header = (
        f'Digest realm="{RFC7616["realm"]}", qop="auth, auth-int", '
        f'algorithm={algorithm.value}, nonce="{RFC7616["nonce"]}", '
        f'opaque="{RFC7616["opaque"]}"'
    )
    challenge = DigestChallenge.from_field(parse_auth(header))
    answer = answer_challenge(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616["cnonce"],
    )
    assert answer.qop == "auth"
    assert answer.response == response
    ha1 = compute_ha1(algorithm, "Mufasa", RFC7616["realm"], "Circle of Life")
    again = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=RFC7616["nonce"],
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616["cnonce"],
    )
    assert again == response


def test_algorithm_names_are_case_insensitive_and_unknown_ones_rejected() -> None:
    assert parse_algorithm("sha-256") is Algorithm.SHA_256
    assert parse_algorithm("MD5-SESS") is Algorithm.MD5_SESS
    with pytest.raises(MalformedMessage):
        parse_algorithm("SHA-1")


def register(authorization: str | None = None) -> Request:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    text = (
        "REGISTER sip:example.org SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds7\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:alice@example.org>\r\n"
        "From: <sip:alice@example.org>;tag=456248\r\n"
        "Call-ID: 843817637684230@998sdasdh09\r\n"
        "CSeq: 1826 REGISTER\r\n"
        f"{auth}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def login(server: DigestServer, now: float, algorithm: Algorithm, password: str) -> Request:
    challenge = next(c for c in server.challenges(now) if c.algorithm is algorithm)
    answer = answer_challenge(
        challenge,
        method="REGISTER",
        uri="sip:example.org",
        username="alice",
        password=password,
        cnonce="a1b2c3d4",
    )
    return register(answer.to_header_value())


def verdict(server: DigestServer, request: Request, now: float, **secret: str) -> Verdict:
    credentials = server.credentials_in(request)
    assert credentials is not None
    return server.verify(
        credentials, method=request.method, now=now, request_uri=str(request.uri), **secret
    )


@pytest.mark.parametrize("algorithm", [Algorithm.SHA_256, Algorithm.MD5])
def test_server_accepts_the_right_password_in_either_algorithm(algorithm: Algorithm) -> None:
    server = DigestServer(SECRET, "example.org")
    request = login(server, 1000.0, algorithm, "secret")
    assert verdict(server, request, 1010.0, password="secret") is Verdict.OK
    ha1 = compute_ha1(algorithm, "alice", "example.org", "secret")
    assert verdict(server, request, 1010.0, ha1=ha1) is Verdict.OK
    assert verdict(server, request, 1010.0, password="wrong") is Verdict.FAILED


def test_challenges_prefer_sha256_and_carry_opaque_and_qop() -> None:
    server = DigestServer(SECRET, "example.org")
    sha, md5 = server.challenges(5.0)
    assert (sha.algorithm, md5.algorithm) == (Algorithm.SHA_256, Algorithm.MD5)
    assert sha.nonce == md5.nonce
    value = sha.to_header_value()
    assert value.startswith('Digest realm="example.org", nonce="')
    assert 'qop="auth"' in value
    assert "algorithm=SHA-256" in value
    assert DigestChallenge.from_field(parse_auth(value)) == sha
    (stale,) = DigestServer(SECRET, "r", algorithms=[Algorithm.MD5]).challenges(0, stale=True)
    assert "stale=true" in stale.to_header_value()


def test_nonces_expire_into_stale_without_server_state() -> None:
    server = DigestServer(SECRET, "example.org", nonce_lifetime=300)
    request = login(server, 1000.0, Algorithm.SHA_256, "secret")
    assert verdict(server, request, 1300.0, password="secret") is Verdict.OK
    assert verdict(server, request, 1300.5, password="secret") is Verdict.STALE
    assert verdict(server, request, 1300.5, password="wrong") is Verdict.FAILED
    # A second server with the same secret recognises the nonce.
    twin = DigestServer(SECRET, "example.org")
    assert verdict(twin, request, 1001.0, password="secret") is Verdict.OK


def test_forged_or_foreign_nonces_fail() -> None:
    server = DigestServer(SECRET, "example.org")
    nonce = server.make_nonce(10.0)
    assert server.check_nonce(nonce, 11.0) is NonceCheck.VALID
    tampered = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    assert server.check_nonce(tampered, 11.0) is NonceCheck.FORGED
    assert server.check_nonce("not base64 !", 11.0) is NonceCheck.FORGED
    other = DigestServer(b"another secret of 32 bytes long!", "example.org")
    assert other.check_nonce(nonce, 11.0) is NonceCheck.FORGED
    request = login(other, 10.0, Algorithm.MD5, "secret")
    assert verdict(server, request, 11.0, password="secret") is Verdict.FAILED


def test_unknown_user_gets_the_same_verdict_as_a_wrong_password() -> None:
    server = DigestServer(SECRET, "example.org")
    request = login(server, 0.0, Algorithm.SHA_256, "whatever")
    assert verdict(server, request, 1.0) is Verdict.FAILED


def test_answer_for_another_uri_or_without_opaque_fails() -> None:
    server = DigestServer(SECRET, "example.org")
    (challenge, _) = server.challenges(0.0)
    answer = answer_challenge(
        challenge,
        method="REGISTER",
        uri="sip:elsewhere.org",
        username="alice",
        password="secret",
        cnonce="x",
    )
    assert verdict(server, register(answer.to_header_value()), 1.0, password="secret") is (
        Verdict.FAILED
    )
    answer = answer_challenge(
        DigestChallenge(challenge.realm, challenge.nonce, challenge.algorithm),
        method="REGISTER",
        uri="sip:example.org",
        username="alice",
        password="secret",
        cnonce="x",
    )
    assert verdict(server, register(answer.to_header_value()), 1.0, password="secret") is (
        Verdict.FAILED
    )


def test_credentials_for_other_realms_or_schemes_are_not_ours() -> None:
    server = DigestServer(SECRET, "example.org")
    assert server.credentials_in(register()) is None
    assert server.credentials_in(register('Digest realm="other", username="a"')) is None
    assert server.credentials_in(register("NoOneKnowsThisScheme opaque-data=here")) is None
    with pytest.raises(MalformedMessage):
        server.credentials_in(register('Digest realm="example.org", username="a"'))


def test_server_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        DigestServer(b"short", "r")
    with pytest.raises(ValueError):
        DigestServer(SECRET, "r", algorithms=[])
