"""A scripted SIP phone for unit tests of the element: builds requests, answers
challenges, and reads what the element sent, all with a fake clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from peerline.sip.digest import DigestChallenge, answer_challenge
from peerline.sip.element import ElementConfig, Send, SipElement
from peerline.sip.fields import parse_auth
from peerline.sip.flow import Flow
from peerline.sip.message import Request, Response, parse_message
from peerline.sip.methods import Transport
from peerline.users import User, UserDirectory

SERVER = ("192.0.2.1", 5060)
DOMAIN = "example.test"
_counter = itertools.count(1)


def make_element(now: float = 1000.0, **config: object) -> SipElement:
    users = UserDirectory([User("alice", "wonderland"), User("bob", "builder")])
    settings = ElementConfig(domain=DOMAIN, realm=DOMAIN, secret=b"s" * 32, **config)  # type: ignore[arg-type]
    return SipElement(settings, users, [(Transport.UDP, SERVER), (Transport.TCP, SERVER)], now)


@dataclass
class Phone:
    """One user agent at `address`, talking to the element over one flow."""

    element: SipElement
    user: str
    password: str
    address: tuple[str, int]
    transport: Transport = Transport.UDP
    connection: int = 0
    cseq: int = field(default_factory=lambda: 1)
    call_id: str = field(default_factory=lambda: f"call-{next(_counter)}")

    @property
    def flow(self) -> Flow:
        return Flow(self.transport, SERVER, self.address, self.connection)

    def via(self, branch: str | None = None) -> str:
        branch = branch or f"z9hG4bK-{next(_counter)}"
        host, port = self.address
        return f"SIP/2.0/{self.transport.value} {host}:{port};branch={branch};rport"

    def request(
        self,
        method: str,
        uri: str,
        *,
        to: str | None = None,
        extra: str = "",
        body: str = "",
        branch: str | None = None,
        cseq: int | None = None,
        from_: str | None = None,
        call_id: str | None = None,
    ) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to = to or f"<sip:{self.user}@{DOMAIN}>"
        from_ = from_ or f"<sip:{self.user}@{DOMAIN}>;tag=f{self.user}"
        text = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: {self.via(branch)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {from_}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id or self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.user}@{self.address[0]}:{self.address[1]}>\r\n"
            f"{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        return text.encode()

    def send(self, data: bytes, now: float) -> list[Send]:
        self.element.receive(data, self.flow, now)
        return self.element.take_sends()

    def register(
        self, now: float, *, contact: str | None = None, expires: int | None = 3600, extra: str = ""
    ) -> Response:
        """REGISTER, answering the challenge; the final response."""
        contact = contact or f"<sip:{self.user}@{self.address[0]}:{self.address[1]}>"
        headers = f"Contact: {contact}\r\n" + extra
        if expires is not None:
            headers += f"Expires: {expires}\r\n"
        first = responses(self.send(self._register_bytes(headers), now))
        assert first[-1].status == 401, first[-1]
        answer = self.authorization(first[-1], "REGISTER", f"sip:{DOMAIN}", "Authorization")
        final = responses(self.send(self._register_bytes(headers + answer), now))
        return final[-1]

    def _register_bytes(self, headers: str) -> bytes:
        self.cseq += 1
        text = (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: {self.via()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.user}@{DOMAIN}>;tag=r{self.user}\r\n"
            f"To: <sip:{self.user}@{DOMAIN}>\r\n"
            f"Call-ID: reg-{self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"{headers}"
            "Content-Length: 0\r\n\r\n"
        )
        return text.encode()

    def authorization(self, challenge: Response, method: str, uri: str, header: str) -> str:
        name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        fields = [parse_auth(v) for v in challenge.headers.get_all(name)]
        md5 = next(f for f in fields if f.get("algorithm") == "MD5")
        credentials = answer_challenge(
            DigestChallenge.from_field(md5),
            method=method,
            uri=uri,
            username=self.user,
            password=self.password,
            cnonce="c0ffee",
        )
        return f"{header}: {credentials.to_header_value()}\r\n"


def messages(sends: list[Send]) -> list[Request | Response]:
    return [parse_message(s.data) for s in sends if s.data[:1] not in (b"\x00", b"\x01")]


def responses(sends: list[Send]) -> list[Response]:
    return [m for m in messages(sends) if isinstance(m, Response)]


def requests(sends: list[Send]) -> list[Request]:
    return [m for m in messages(sends) if isinstance(m, Request)]


def reply(request: Request, status: int, *, to_tag: str = "callee", extra: str = "") -> bytes:
    """The bytes of a response from a phone to a request the element sent it."""
    items = tuple(
        (name, value.strip())
        for name, _, value in (line.partition(":") for line in extra.splitlines() if line)
    )
    return Response.for_request(request, status, to_tag=to_tag, extra=items).to_bytes()
