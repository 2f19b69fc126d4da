"""SIP requests and responses: parse from bytes, serialize to bytes (RFC 3261 §7, §20).

`parse_message` takes one complete message: a UDP datagram, or what
`framing.StreamFramer` cut from a stream. It accepts every form the grammar
allows (compact names, folding, odd spacing, escapes) and rejects anything
else with `MalformedMessage`, which says why and, for a request that can still
be answered, with which status. Header lines are kept as received; typed
accessors (`vias`, `from_`, `cseq`, `contacts`...) read them on demand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from peerline.sip._syntax import WS, is_token
from peerline.sip.errors import MalformedMessage
from peerline.sip.fields import (
    MAX_UINT32,
    AuthField,
    CSeq,
    MediaType,
    NameAddress,
    Via,
    contact_is_wildcard,
    parse_auth,
    parse_cseq,
    parse_delta_seconds,
    parse_media_type,
    parse_name_address,
    parse_uint,
    parse_via,
)
from peerline.sip.headers import Headers
from peerline.sip.methods import Method, StatusClass, as_method
from peerline.sip.uri import SipUri, Uri, parse_uri

SIP_VERSION = "SIP/2.0"
_T = TypeVar("_T")
_WS_CHARS = frozenset(WS)
_VERSION = re.compile(r"^SIP/[0-9]+\.[0-9]+$", re.IGNORECASE)
#: Headers every message needs (RFC 3261 §8.1.1).
_REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
#: What a client needs to match a response to its transaction (§17.1.3): without
#: them an answer could not reach anyone, so a broken request is dropped.
_ROUTING_HEADERS = ("Via", "CSeq")
_SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards")

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    430: "Flow Failed",
    439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class HeaderFields:
    """Typed readers shared by requests and responses. Each parses its header once
    and keeps the result in the message's cache, keyed by header name (a message
    stays an immutable value: the cache only ever holds what its headers say)."""

    __slots__ = ()
    headers: Headers
    _cache: dict[str, Any]

    def _one(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise MalformedMessage(f"missing {name} header")
        return value

    def parsed_of(self, names: frozenset[str]) -> dict[str, Any]:
        """What has been parsed of the headers `names`, for a copy of this message
        that carries those lines unchanged (so that it need not parse them again)."""
        return {k: v for k, v in self._cache.items() if k in names}

    def _parsed(self, name: str, parse: Callable[[str], _T]) -> _T:
        """The one value of `name`, parsed the first time it is asked for."""
        cache = self._cache
        found = cache.get(name)
        if found is None:
            found = cache[name] = parse(self._one(name))
        return cast(_T, found)

    def _parsed_list(self, name: str, parse: Callable[[str], _T]) -> tuple[_T, ...]:
        """Every value of `name`, parsed the first time they are asked for."""
        cache = self._cache
        found = cache.get(name)
        if found is None:
            found = cache[name] = tuple(parse(v) for v in self.headers.values(name))
        return cast(tuple[_T, ...], found)

    @property
    def vias(self) -> tuple[Via, ...]:
        return self._parsed_list("Via", parse_via)

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise MalformedMessage("missing Via header")
        return vias[0]

    @property
    def from_(self) -> NameAddress:
        return self._parsed("From", parse_name_address)

    @property
    def to(self) -> NameAddress:
        return self._parsed("To", parse_name_address)

    @property
    def call_id(self) -> str:
        return self._one("Call-ID").strip(WS)

    @property
    def cseq(self) -> CSeq:
        return self._parsed("CSeq", parse_cseq)

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_uint(value, "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return None if value is None else parse_delta_seconds(value, "Expires")

    @property
    def min_expires(self) -> int | None:
        value = self.headers.get("Min-Expires")
        return None if value is None else parse_delta_seconds(value, "Min-Expires")

    @property
    def contact_wildcard(self) -> bool:
        """`Contact: *`, the REGISTER that removes every binding (RFC 3261 §10.2.2)."""
        return any(contact_is_wildcard(v) for v in self.headers.get_all("Contact"))

    @property
    def contacts(self) -> tuple[NameAddress, ...]:
        cache = self._cache
        found = cache.get("Contact")
        if found is None:
            found = cache["Contact"] = tuple(
                parse_name_address(v) for v in self.headers.values("Contact") if v.strip(WS) != "*"
            )
        return cast(tuple[NameAddress, ...], found)

    @property
    def routes(self) -> tuple[NameAddress, ...]:
        return self._parsed_list("Route", parse_name_address)

    @property
    def record_routes(self) -> tuple[NameAddress, ...]:
        return self._parsed_list("Record-Route", parse_name_address)

    @property
    def paths(self) -> tuple[NameAddress, ...]:
        return self._parsed_list("Path", parse_name_address)

    @property
    def content_type(self) -> MediaType | None:
        value = self.headers.get("Content-Type")
        return None if value is None else parse_media_type(value)

    def option_tags(self, name: str) -> tuple[str, ...]:
        """The tokens of Require, Supported, Proxy-Require or Unsupported."""
        return tuple(self.headers.values(name))

    def auth_fields(self, name: str) -> tuple[AuthField, ...]:
        """Every Authorization, Proxy-Authorization, WWW- or Proxy-Authenticate line."""
        return tuple(parse_auth(v) for v in self.headers.get_all(name))


def _encode_head(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    length_written = False
    for name, value in headers:
        if name != "Content-Length":
            lines.append(f"{name}: {value}")
        elif not length_written:
            lines.append(f"Content-Length: {len(body)}")
            length_written = True
    if not length_written:
        lines.append(f"Content-Length: {len(body)}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text.encode("utf-8", "surrogateescape") + body


@dataclass(frozen=True, slots=True)
class Request(HeaderFields):
    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        """The wire form; Content-Length always states the real body length."""
        return _encode_head(f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body)

    def with_headers(
        self, headers: Headers, *changed: str, parsed: dict[str, Any] | None = None
    ) -> Request:
        """The same request with other headers. What was parsed of the headers that
        did not change (all but `changed`) is kept; `parsed` gives the parsed form
        of changed ones when the caller has it (a stamped Via, a popped Route)."""
        cache = {k: v for k, v in self._cache.items() if k not in changed}
        if parsed:
            cache.update(parsed)
        return Request(self.method, self.uri, headers, self.body, cache)


@dataclass(frozen=True, slots=True)
class Response(HeaderFields):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def status_class(self) -> StatusClass:
        return StatusClass.of(self.status)

    def to_bytes(self) -> bytes:
        start = f"{SIP_VERSION} {self.status} {self.reason}"
        return _encode_head(start, self.headers, self.body)

    @classmethod
    def for_request(
        cls,
        request: Request | Headers,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Response:
        """A response built as RFC 3261 §8.2.6 says: Via lines, From, Call-ID and CSeq
        copied as received, To copied and tagged (unless it has a tag already or
        the status is 100), Timestamp echoed in a 100."""
        headers = request.headers if isinstance(request, Request) else request
        items: list[tuple[str, str]] = [("Via", v) for v in headers.get_all("Via")]
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = headers.get(name)
            if value is None:
                continue
            if name == "To" and to_tag and status != 100:
                try:
                    has_tag = parse_name_address(value).tag is not None
                except MalformedMessage:
                    has_tag = True
                if not has_tag:
                    value = f"{value};tag={to_tag}"
            items.append((name, value))
        timestamp = headers.get("Timestamp")
        if status == 100 and timestamp is not None:
            items.append(("Timestamp", timestamp))
        items.extend(extra)
        items.append(("Content-Length", str(len(body))))
        phrase = reason if reason is not None else REASON_PHRASES.get(status, "")
        cache: dict[str, Any] = {}
        if isinstance(request, Request):  # the copied lines mean what they meant there
            cache = request.parsed_of(_COPIED)
        return cls(status, phrase, Headers(items), body, cache)


Message = Request | Response
#: Headers a response copies from its request unchanged (§8.2.6.2; To gets a tag).
_COPIED = frozenset({"Via", "From", "CSeq"})


def error_response(error: MalformedMessage) -> Response | None:
    """The answer to a request that failed to parse, or None if none may be sent."""
    if error.status is None or error.headers is None:
        return None
    return Response.for_request(error.headers, error.status, extra=(("Warning", _warning(error)),))


def _warning(error: MalformedMessage) -> str:
    """RFC 3261 §20.43 warn-code 399 (miscellaneous) carrying the parse reason."""
    text = error.reason.replace("\\", "\\\\").replace('"', '\\"')
    text = "".join(c if c.isprintable() else "?" for c in text)
    return f'399 peerline "{text[:200]}"'


def parse_message(data: bytes) -> Message:
    """One message from one datagram or one frame; octets after the body are ignored
    (RFC 3261 §18.3), and without Content-Length the body runs to the end."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    head_end = data.find(b"\r\n\r\n", start)
    if head_end < 0:
        raise MalformedMessage("no empty line after the headers", status=None)
    head = data[start:head_end].decode("utf-8", "surrogateescape")
    lines = head.split("\r\n")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise MalformedMessage("bare CR or LF in the message head", status=None)
    is_response = lines[0][:4].upper() == "SIP/"
    try:
        headers = _parse_header_lines(lines[1:])
    except MalformedMessage as error:
        raise MalformedMessage(error.reason, status=None) from None
    try:
        body = _read_body(headers, data, head_end + 4)
        if is_response:
            status, reason = _parse_status_line(lines[0])
            response = Response(status, reason, headers, body)
            _validate(response)
            return response
        method, uri = _parse_request_line(lines[0])
        request = Request(method, uri, headers, body)
        _validate(request)
    except MalformedMessage as error:
        if is_response or not all(name in headers for name in _ROUTING_HEADERS):
            raise MalformedMessage(error.reason, status=None) from None
        raise MalformedMessage(error.reason, status=error.status, headers=headers) from None
    return request


def _parse_header_lines(lines: list[str]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not items:
                raise MalformedMessage("continuation line before the first header")
            name, value = items[-1]
            folded = line.strip(WS)
            items[-1] = (name, f"{value} {folded}" if value and folded else value + folded)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(WS)
        if not colon:
            raise MalformedMessage(f"header line without ':': {line[:60]!r}")
        if not is_token(name):
            raise MalformedMessage(f"bad header name {name!r}")
        items.append((name, value.strip(WS)))
    return Headers(items)


def _read_body(headers: Headers, data: bytes, offset: int) -> bytes:
    lengths = {parse_uint(v, "Content-Length", MAX_UINT32) for v in headers.get_all("l")}
    if len(lengths) > 1:
        raise MalformedMessage("Content-Length headers disagree")
    if not lengths:
        return data[offset:]
    length = lengths.pop()
    if len(data) - offset < length:
        raise MalformedMessage(f"body is {len(data) - offset} bytes, Content-Length says {length}")
    return data[offset : offset + length]


def _check_version(version: str, what: str) -> None:
    if version.upper() != SIP_VERSION:
        if _VERSION.match(version):
            raise MalformedMessage(f"unsupported SIP version {version!r}", status=505)
        raise MalformedMessage(f"bad SIP version {version!r} in {what}")


def _parse_request_line(line: str) -> tuple[str, Uri]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise MalformedMessage(
            f"request line must be 'METHOD SP Request-URI SP SIP/2.0': {line[:100]!r}"
        )
    method, uri_text, version = parts
    if not is_token(method):
        raise MalformedMessage(f"bad method {method!r}")
    _check_version(version, "request line")
    if uri_text.startswith("<"):
        raise MalformedMessage("the Request-URI must not be enclosed in <...>")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        raise MalformedMessage("the Request-URI must not carry URI headers (RFC 3261 §19.1.1)")
    return as_method(method), uri


def _parse_status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    _check_version(version, "status line")
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise MalformedMessage(f"status code must be 100-699: {code[:20]!r}")
    return int(code), reason


def _validate(message: Message) -> None:
    """The checks every element needs before acting on a message (RFC 3261 §8.2, §16.3)."""
    headers = message.headers
    for name in _REQUIRED_HEADERS:
        if name not in headers:
            raise MalformedMessage(f"missing {name} header")
    for name in _SINGLE_HEADERS:
        if len(headers.get_all(name)) > 1:
            raise MalformedMessage(f"more than one {name} header")
    if not message.vias:
        raise MalformedMessage("missing Via header")
    call_id = message.call_id
    if not call_id or not _WS_CHARS.isdisjoint(call_id):
        raise MalformedMessage(f"bad Call-ID {call_id!r}")
    message.from_  # noqa: B018 -- parsed for its errors
    message.to  # noqa: B018
    cseq = message.cseq
    message.max_forwards  # noqa: B018
    message.expires  # noqa: B018
    message.content_type  # noqa: B018
    for name in ("Route", "Record-Route", "Path"):
        for value in headers.values(name):
            parse_name_address(value)
    contacts = headers.values("Contact")
    if any(v.strip(WS) == "*" for v in contacts) and len(contacts) > 1:
        raise MalformedMessage("Contact '*' must stand alone")
    for contact in message.contacts:
        contact.q  # noqa: B018 -- the registrar orders by q and trusts these
        contact.expires  # noqa: B018
        contact.reg_id  # noqa: B018
    if isinstance(message, Request) and cseq.method != message.method:
        known = isinstance(message.method, Method)
        raise MalformedMessage(
            f"CSeq method {cseq.method!r} differs from request method {message.method!r}",
            status=400 if known else 501,
        )


def build_ack(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 3xx-6xx to its INVITE (RFC 3261
    §17.1.1.3): same Request-URI, Call-ID, From, CSeq number and top Via, the To
    of the response, and the request's Route set."""
    via = request.headers.values("Via")[0]
    items: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
    items.extend(("Route", value) for value in request.headers.get_all("Route"))
    items.append(("From", request._one("From")))
    items.append(("To", response._one("To")))
    items.append(("Call-ID", request._one("Call-ID")))
    items.append(("CSeq", f"{request.cseq.number} {Method.ACK}"))
    items.append(("Content-Length", "0"))
    return Request(Method.ACK, request.uri, Headers(items))


def build_cancel(request: Request) -> Request:
    """The CANCEL for a pending request (RFC 3261 §9.1): it shares the request's
    branch, so it reaches the same next hop and matches the same transaction."""
    via = request.headers.values("Via")[0]
    items: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
    items.extend(("Route", value) for value in request.headers.get_all("Route"))
    items.extend((name, request._one(name)) for name in ("From", "To", "Call-ID"))
    items.append(("CSeq", f"{request.cseq.number} {Method.CANCEL}"))
    items.append(("Content-Length", "0"))
    return Request(Method.CANCEL, request.uri, Headers(items))
