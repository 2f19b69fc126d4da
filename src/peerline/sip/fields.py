"""Typed views of the header values the SIP core and its users act on.

Each `parse_*` function reads one header value (one list element for list
headers) and raises `MalformedMessage` with the reason; each type prints back
to a valid header value with `str()`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from peerline.sip._syntax import (
    WS,
    Params,
    is_token,
    parse_params,
    quote,
    read_quoted,
    split_outside,
    unquote,
)
from peerline.sip.errors import MalformedMessage
from peerline.sip.methods import as_method
from peerline.sip.uri import SipUri, Uri, parse_uri, split_host_port

#: RFC 3261 §8.1.1.7: the branch of a transaction that follows RFC 3261.
MAGIC_COOKIE = "z9hG4bK"
#: Largest value of delta-seconds and of a CSeq number: 2**32 - 1.
MAX_UINT32 = 2**32 - 1

_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA = re.compile(
    rf"^({_T})[ \t]*/[ \t]*({_T})[ \t]*/[ \t]*({_T})[ \t]+(\[[^\]]*\]|[^ \t:\[\]]+)"
    r"(?:[ \t]*:[ \t]*([0-9]+))?$"
)
_CSEQ = re.compile(rf"^([0-9]+)[ \t]+({_T})$")
_MEDIA = re.compile(rf"^({_T})[ \t]*/[ \t]*({_T})(.*)$", re.DOTALL)
_AUTH_PARAM = re.compile(rf"^[ \t]*({_T})[ \t]*=[ \t]*(.*?)[ \t]*$", re.DOTALL)
_AUTH_ITEM = re.compile(rf'[ \t]*({_T})[ \t]*=[ \t]*("(?:[^"\\\r\n]|\\[^\r\n])*"|{_T})[ \t]*(,|$)')


def parse_uint(text: str, what: str, maximum: int) -> int:
    """Digits only (leading zeros fine, RFC 4475 §3.1.1.1), at most `maximum`."""
    value = text.strip(WS)
    if not value.isdigit() or not value.isascii():
        raise MalformedMessage(f"{what} is not a number: {value!r}")
    if len(value) > 20 or int(value) > maximum:
        raise MalformedMessage(f"{what} out of range (at most {maximum}): {value!r}")
    return int(value)


def parse_delta_seconds(text: str, what: str) -> int:
    """delta-seconds: too large a value means "as long as possible" (RFC 3261 §25.1
    says 2**32-1 is the limit), so it is capped rather than refused."""
    value = text.strip(WS)
    if not value.isdigit() or not value.isascii():
        raise MalformedMessage(f"{what} is not a number of seconds: {value!r}")
    return min(int(value) if len(value) <= 20 else MAX_UINT32, MAX_UINT32)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry: how and where the response to a request must go back."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        """The branch starts with the magic cookie and has something after it."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and branch != MAGIC_COOKIE

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport_requested(self) -> bool:
        """RFC 3581: the client asked for the source port in `rport`."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return None if value is None else int(value)

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, params: Params) -> Via:
        return Via(self.transport, self.host, self.port, params, self.protocol)

    def stamped(self, source_ip: str, source_port: int) -> Via:
        """The Via as a server records it on receipt (RFC 3261 §18.2.1, RFC 3581 §4):
        `received` when the source differs from sent-by or rport was asked for,
        and `rport` filled with the source port when asked for."""
        params = self.params
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        if self.rport_requested or not _same_ip(host, source_ip):
            params = params.with_param("received", source_ip)
        if self.rport_requested:
            params = params.with_param("rport", str(source_port))
        return self.with_params(params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{self.params}"


def _same_ip(host: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(ip)
    except ValueError:
        return False


#: Via texts already read or written, and what they mean. A response carries back
#: the Vias of its request: ours, which we wrote, and the sender's, which we read
#: and stamped; remembering both spares parsing them again. Bounded: cleared when full.
_KNOWN_VIAS: dict[str, Via] = {}
_KNOWN_VIAS_MAX = 16384


def parse_via(text: str) -> Via:
    """One Via value."""
    via = _KNOWN_VIAS.get(text)
    if via is None:
        via = _parse_via(text)
        remember_via(text, via)
    return via


def remember_via(text: str, via: Via) -> None:
    """`text` is how `via` is written: a message that carries it back needs no parse."""
    if len(_KNOWN_VIAS) >= _KNOWN_VIAS_MAX:
        _KNOWN_VIAS.clear()
    _KNOWN_VIAS[text] = via


def _parse_via(text: str) -> Via:
    head, semicolon, tail = text.strip(WS).partition(";")
    match = _VIA.match(head.strip(WS))
    if not match:
        raise MalformedMessage(f"bad Via {text.strip(WS)!r}")
    name, version, transport, host_text, port_text = match.groups()
    host, _ = split_host_port(host_text, "Via sent-by")
    port = None
    if port_text is not None:
        port = parse_uint(port_text, "Via port", 65535)
    params = parse_params(";" + tail) if semicolon else Params()
    for numeric, limit in (("rport", 65535), ("ttl", 255)):
        value = params.get(numeric)
        if value is not None:
            parse_uint(value, f"Via {numeric}", limit)
    branch = params.raw("branch")
    if "branch" in params and not (branch and is_token(branch)):
        raise MalformedMessage(f"bad Via branch {branch!r}")
    return Via(transport.upper(), host, port, params, f"{name.upper()}/{version}")


@dataclass(frozen=True, slots=True)
class NameAddress:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route,
    Record-Route, Path. `display_name` is unquoted; None when there was none."""

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=Params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return None if value is None else parse_delta_seconds(value, "Contact expires")

    @property
    def q(self) -> float | None:
        """Contact preference 0..1 (RFC 3261 §20.10); None when not given."""
        value = self.params.get("q")
        return None if value is None else _parse_q(value)

    @property
    def instance(self) -> str | None:
        """RFC 5626 `+sip.instance`, without its `<...>` (a URN)."""
        value = self.params.get("+sip.instance")
        if value is None:
            return None
        return value[1:-1] if value.startswith("<") and value.endswith(">") else value

    @property
    def reg_id(self) -> int | None:
        """RFC 5626 `reg-id`: which outbound flow of the instance this is."""
        value = self.params.get("reg-id")
        return None if value is None else parse_uint(value, "reg-id", MAX_UINT32)

    def with_param(
        self, name: str, value: str | None = None, *, quoted: bool = False
    ) -> NameAddress:
        return NameAddress(
            self.uri, self.display_name, self.params.with_param(name, value, quoted=quoted)
        )

    def with_tag(self, tag: str) -> NameAddress:
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{self.params}"


def _parse_q(value: str) -> float:
    if not re.fullmatch(r"(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", value):
        raise MalformedMessage(f"bad q value {value!r}")
    return float(value)


@functools.lru_cache(maxsize=4096)
def parse_name_address(text: str) -> NameAddress:
    """A name-addr value (cached: results are immutable and read many times)."""
    return _parse_name_address(text)


def _parse_name_address(text: str) -> NameAddress:
    """`"Name" <uri>;p`, `Name <uri>;p`, `<uri>;p` or `uri;p` (RFC 3261 §20.10, §25.1)."""
    text = text.strip(WS)
    display: str | None = None
    rest = text
    if text.startswith('"'):
        display, end = read_quoted(text, 0)
        rest = text[end:].lstrip(WS)
        if not rest.startswith("<"):
            raise MalformedMessage(f"expected '<' after the display name in {text!r}")
    elif "<" in text:
        before, _, after = text.partition("<")
        words = before.split()
        if any(not is_token(word) for word in words):
            raise MalformedMessage(f"display name must be tokens or quoted: {before.strip()!r}")
        display = " ".join(words) if words else None
        rest = "<" + after
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            raise MalformedMessage(f"missing '>' in {text!r}")
        uri_text, param_text = rest[1:end], rest[end + 1 :]
        if uri_text != uri_text.strip(WS):
            raise MalformedMessage(f"white space inside <...> in {text!r}")
    else:
        uri_text, semicolon, param_text = rest.partition(";")
        uri_text = uri_text.rstrip(WS)
        param_text = semicolon + param_text
        if "," in uri_text or "?" in uri_text:
            raise MalformedMessage(f"a URI with ',' or '?' must be inside <...>: {uri_text!r}")
    return NameAddress(parse_uri(uri_text), display, parse_params(param_text))


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    match = _CSEQ.match(text.strip(WS))
    if not match:
        raise MalformedMessage(f"bad CSeq {text.strip(WS)!r}")
    number = parse_uint(match.group(1), "CSeq number", MAX_UINT32)
    return CSeq(number, as_method(match.group(2)))


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str
    subtype: str
    params: Params = field(default_factory=Params)

    @property
    def essence(self) -> str:
        """`type/subtype` in lower case, for comparisons."""
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{self.params}"


def parse_media_type(text: str) -> MediaType:
    match = _MEDIA.match(text.strip(WS))
    if not match:
        raise MalformedMessage(f"bad media type {text.strip(WS)!r}")
    return MediaType(match.group(1), match.group(2), parse_params(match.group(3)))


@dataclass(frozen=True, slots=True)
class AuthField:
    """A challenge (WWW-/Proxy-Authenticate) or credentials (Authorization,
    Proxy-Authorization): a scheme and its comma-separated `name=value` params.
    Values are kept as written (quoted or not); `get` unquotes."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    _by_name: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, str] = {}
        for name, value in self.params:
            by_name.setdefault(name.lower(), value)  # the first of a repeated name
        object.__setattr__(self, "_by_name", by_name)

    def get(self, name: str) -> str | None:
        value = self._by_name.get(name.lower())
        return None if value is None else unquote(value)

    def __str__(self) -> str:
        return self.scheme + " " + ", ".join(f"{n}={v}" for n, v in self.params)


def parse_auth(text: str) -> AuthField:
    text = text.strip(WS)
    scheme, _, rest = text.partition(" ")
    if not is_token(scheme):
        raise MalformedMessage(f"bad authentication scheme {scheme!r}")
    scanned = _scan_auth_params(rest)
    if scanned is not None:
        return AuthField(scheme, scanned)
    # Something is wrong with it: go element by element to say what.
    params: list[tuple[str, str]] = []
    for chunk in split_outside(rest, ","):
        match = _AUTH_PARAM.match(chunk)
        if not match:
            raise MalformedMessage(f"bad authentication parameter {chunk.strip(WS)!r}")
        name, value = match.groups()
        if value.startswith('"'):
            unquote(value)
        elif not is_token(value):
            raise MalformedMessage(f"bad value for {name!r}: {value!r}")
        params.append((name, value))
    return AuthField(scheme, tuple(params))


def _scan_auth_params(text: str) -> tuple[tuple[str, str], ...] | None:
    """`name=value, ...` read in one pass of one pattern (the hot path of every
    authenticated request), or None if the text is not exactly that."""
    items: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while pos < end or not items:
        match = _AUTH_ITEM.match(text, pos)
        if match is None:
            return None
        items.append((match.group(1), match.group(2)))
        pos = match.end()
        if match.group(3) != ",":
            return tuple(items) if pos == end else None
    return None  # a trailing comma


def contact_is_wildcard(text: str) -> bool:
    return text.strip(WS) == "*"


def as_sip_uri(uri: Uri) -> SipUri | None:
    return uri if isinstance(uri, SipUri) else None
