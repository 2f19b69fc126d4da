"""SIP, SIPS and tel URIs (RFC 3261 §19, RFC 3966), and any other scheme kept opaque.

Components are kept exactly as written, escapes included, so that a proxy
forwards what it received. Equivalence (RFC 3261 §19.1.4) is `equivalent()`,
not `==`: `==` is structural identity, which is what round-trip tests want.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from dataclasses import dataclass, field

from peerline.sip._syntax import Params
from peerline.sip.errors import MalformedMessage

_ALNUM = string.ascii_letters + string.digits
_UNRESERVED = frozenset(_ALNUM + "-_.!~*'()")
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_TEL_CHARS = frozenset(string.hexdigits + "*#-.()+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")
#: uri-parameters that make two SIP URIs differ when only one has them (§19.1.4).
_DECISIVE_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})
_HEX = frozenset(string.hexdigits)
_NEVER_IN_URI = frozenset(' \t\r\n<>"')
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    """Every character allowed, and every `%` starts a `%HH` escape."""
    if allowed.issuperset(text):
        return  # no escape to check: the common case
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            if len(text) < i + 3 or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
                raise MalformedMessage(f"bad %-escape in {what} {text!r}")
            i += 3
            continue
        if c not in allowed:
            raise MalformedMessage(f"character {c!r} not allowed in {what} {text!r}")
        i += 1


def unescape(text: str) -> str:
    """Undo `%HH` escapes (RFC 3261 §19.1.2); bytes that are not UTF-8 survive."""
    if "%" not in text:
        return text
    raw = bytearray()
    for index, piece in enumerate(_ESCAPE.split(text)):
        if index % 2:
            raw.append(int(piece, 16))
        else:
            raw.extend(piece.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def escape(text: str, allowed: frozenset[str] = _USER_CHARS) -> str:
    """Escape what may not appear as-is in a URI component (default: the user part)."""
    out: list[str] = []
    for c in text:
        if c in allowed:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _canonical_escapes(text: str) -> str:
    """One spelling per character: unreserved characters unescaped, others `%HH` upper.

    §19.1.4: an escaped character equals its literal form, except that an escaped
    reserved character differs from the reserved character itself.
    """

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{ord(char):02X}"

    return _ESCAPE.sub(one, text)


def _parse_host(text: str, what: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise MalformedMessage(f"unterminated IPv6 reference in {what} {text!r}")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise MalformedMessage(f"bad IPv6 address in {what} {text!r}") from None
        return text
    if not _HOSTNAME.match(text) or ".." in text:
        raise MalformedMessage(f"bad host in {what}: {text!r}")
    return text


def split_host_port(text: str, what: str) -> tuple[str, int | None]:
    """`host[:port]` with an IPv6 reference allowed as host; the port is 0-65535."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        if end < 0:
            raise MalformedMessage(f"unterminated IPv6 reference in {what} {text!r}")
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit() or not rest[1:].isascii():
            raise MalformedMessage(f"bad port in {what} {text!r}")
        port = int(rest[1:])
        if port > 65535:
            raise MalformedMessage(f"port out of range in {what} {text!r}")
    return _parse_host(host, what), port


def canonical_host(host: str) -> str:
    """Lower case; an IPv6 reference compressed, so `[::1]` equals `[0:0::1]`."""
    if host.startswith("["):
        return f"[{ipaddress.IPv6Address(host[1:-1])}]"
    return host.lower()


def _parse_uri_params(text: str) -> Params:
    items: list[tuple[str, str | None]] = []
    for chunk in text.split(";"):
        name, eq, value = chunk.partition("=")
        if not name:
            raise MalformedMessage("empty URI parameter")
        _check_chars(name, _PARAM_CHARS, "URI parameter name")
        if eq:
            if not value:
                raise MalformedMessage(f"URI parameter {name!r} has an empty value")
            _check_chars(value, _PARAM_CHARS, "URI parameter value")
        items.append((name, value if eq else None))
    return Params(items)


@dataclass(frozen=True, slots=True)
class SipUri:
    """`sip:` or `sips:` URI; `user`, `password`, params and headers as written."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: tuple[tuple[str, str], ...] = ()
    secure: bool = False

    @property
    def scheme(self) -> str:
        return "sips" if self.secure else "sip"

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return None if value is None else value.lower()

    @property
    def lr(self) -> bool:
        """Loose routing (RFC 3261 §16.12): a Route entry that a proxy just pops."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ob(self) -> bool:
        """RFC 5626 `ob`: the edge proxy keeps this flow for the dialog."""
        return "ob" in self.params

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def host_address(self) -> str:
        """The host without IPv6 brackets, as sockets want it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def with_params(self, params: Params) -> SipUri:
        return SipUri(
            self.host, self.user, self.password, self.port, params, self.headers, self.secure
        )

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 equality."""
        if not isinstance(other, SipUri) or self.secure != other.secure:
            return False
        if _user_key(self) != _user_key(other):
            return False
        if canonical_host(self.host) != canonical_host(other.host) or self.port != other.port:
            return False
        mine = _param_map(self.params)
        theirs = _param_map(other.params)
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if mine[name] != theirs[name]:
                    return False
            elif name in _DECISIVE_PARAMS:
                return False
        return _header_map(self.headers) == _header_map(other.headers)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(str(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)


def _user_key(uri: SipUri) -> tuple[str | None, str | None]:
    user = None if uri.user is None else _canonical_escapes(uri.user)
    password = None if uri.password is None else _canonical_escapes(uri.password)
    return user, password


def _param_map(params: Params) -> dict[str, str | None]:
    return {
        _canonical_escapes(n).lower(): None if v is None else _canonical_escapes(v).lower()
        for n, v in params
    }


def _header_map(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {_canonical_escapes(n).lower(): _canonical_escapes(v) for n, v in headers}


@dataclass(frozen=True, slots=True)
class TelUri:
    """`tel:` URI (RFC 3966): a global (`+...`) or local number and its parameters."""

    number: str
    params: Params = field(default_factory=Params)

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: visual separators ignored, parameters in any order."""
        if not isinstance(other, TelUri):
            return False
        mine = self.number.translate(_VISUAL_SEPARATORS).lower()
        theirs = other.number.translate(_VISUAL_SEPARATORS).lower()
        return mine == theirs and _param_map(self.params) == _param_map(other.params)

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of a scheme SIP does not know (`http:`, `urn:`...), kept opaque.

    RFC 4475 §3.1.2.x: such URIs are well formed; whether one can be used is a
    decision for the element (416 Unsupported URI Scheme), not for the parser.
    """

    scheme: str
    rest: str

    def equivalent(self, other: object) -> bool:
        return (
            isinstance(other, AbsoluteUri)
            and self.scheme.lower() == other.scheme.lower()
            and self.rest == other.rest
        )

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


@functools.lru_cache(maxsize=8192)
def parse_uri(text: str) -> Uri:
    """Parse any URI that may stand in a Request-URI or a name-addr (cached: URIs
    are immutable values, and the same ones come back with every message)."""
    return _parse_uri(text)


def _parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.match(scheme):
        raise MalformedMessage(f"not a URI: {text!r}")
    if not _NEVER_IN_URI.isdisjoint(text):
        raise MalformedMessage(f'white space or <>" inside a URI: {text!r}')
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(rest, secure=lowered == "sips")
    if lowered == "tel":
        return _parse_tel(rest)
    if not rest:
        raise MalformedMessage(f"empty URI after scheme {scheme!r}")
    return AbsoluteUri(scheme, rest)


def _parse_sip(text: str, *, secure: bool) -> SipUri:
    user = password = None
    at = text.find("@")
    if at >= 0:
        userinfo, text = text[:at], text[at + 1 :]
        user, colon, password_text = userinfo.partition(":")
        _check_chars(user, _USER_CHARS, "URI user")
        if not user:
            raise MalformedMessage("empty user part before '@'")
        if colon:
            _check_chars(password_text, _PASSWORD_CHARS, "URI password")
            password = password_text
    text, question, header_text = text.partition("?")
    hostport, semicolon, param_text = text.partition(";")
    host, port = split_host_port(hostport, "URI")
    params = _parse_uri_params(param_text) if semicolon else Params()
    headers: list[tuple[str, str]] = []
    if question:
        for chunk in header_text.split("&"):
            name, eq, value = chunk.partition("=")
            if not name or not eq:
                raise MalformedMessage(f"bad URI header {chunk!r}")
            _check_chars(name, _HEADER_CHARS, "URI header name")
            _check_chars(value, _HEADER_CHARS, "URI header value")
            headers.append((name, value))
    return SipUri(host, user, password, port, params, tuple(headers), secure)


def _parse_tel(text: str) -> TelUri:
    number, semicolon, param_text = text.partition(";")
    digits = number.lstrip("+")
    if (
        not digits
        or number.count("+") > 1
        or any(c not in _TEL_CHARS for c in digits)
        or not any(c in string.hexdigits + "*#" for c in digits)
    ):
        raise MalformedMessage(f"bad telephone number {number!r}")
    params = _parse_uri_params(param_text) if semicolon else Params()
    if not number.startswith("+") and "phone-context" not in params:
        raise MalformedMessage("a local tel number needs a phone-context parameter")
    return TelUri(number, params)
