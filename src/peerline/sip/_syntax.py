"""The small grammar pieces every SIP header shares (RFC 3261 §25.1).

Tokens, quoted strings, separators that must be skipped inside quotes and
angle brackets, and `;name=value` parameter lists. Everything here works on
text that header unfolding already produced, and raises `MalformedMessage`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator

from peerline.sip.errors import MalformedMessage

#: RFC 3261 `token` characters.
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
#: Linear white space once folding is undone.
WS = " \t"
#: Characters a parameter value may hold without quotes: token, plus the IPv6 and
#: host characters of `gen-value = token / host` (received=2001:db8::1, maddr=[::1]).
VALUE_CHARS = TOKEN_CHARS | frozenset(":[]/")


def is_token(text: str) -> bool:
    return bool(text) and TOKEN_CHARS.issuperset(text)


def quote(text: str) -> str:
    """A quoted-string holding `text`; only `\\` and `"` need escaping."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string that opens at `text[start]`: (its content, index after it).

    Quoted-pairs are undone; CR and LF may not be escaped (RFC 3261 §25.1).
    """
    end = text.find('"', start + 1)
    if end > 0:
        content = text[start + 1 : end]
        if "\\" not in content and "\r" not in content and "\n" not in content:
            return content, end + 1  # no quoted-pair: the hot path (digest parameters)
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(text):
                break
            escaped = text[i + 1]
            if escaped in "\r\n":
                raise MalformedMessage("quoted-pair may not escape CR or LF")
            out.append(escaped)
            i += 2
            continue
        if c in "\r\n":
            raise MalformedMessage("line break inside a quoted string")
        out.append(c)
        i += 1
    raise MalformedMessage(f"unterminated quoted string: {text[start:]!r}")


def unquote(text: str) -> str:
    """The content of `text` if it is one whole quoted-string, else `text` itself."""
    if text.startswith('"'):
        content, end = read_quoted(text, 0)
        if end != len(text):
            raise MalformedMessage(f"text after a quoted string: {text!r}")
        return content
    return text


_SPECIALS: dict[str, re.Pattern[str]] = {}


def split_outside(text: str, separator: str) -> list[str]:
    """Split at `separator` where it is not inside a quoted string or `<...>`."""
    if separator not in text:
        return [text]
    if '"' not in text and "<" not in text and ">" not in text:
        return text.split(separator)  # the common case, and the hot path of the parser
    specials = _SPECIALS.get(separator)
    if specials is None:
        specials = _SPECIALS[separator] = re.compile(f'["<>{re.escape(separator)}]')
    parts: list[str] = []
    depth = 0
    begin = 0
    i = 0
    while (found := specials.search(text, i)) is not None:
        i = found.start()
        c = text[i]
        if c == '"':
            _, i = read_quoted(text, i)
            continue
        if c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append(text[begin:i])
            begin = i + 1
        i += 1
    if depth:
        raise MalformedMessage(f"unbalanced '<' in {text!r}")
    parts.append(text[begin:])
    return parts


def split_list(text: str) -> list[str]:
    """The elements of a comma-separated header value, trimmed; empty ones are errors."""
    elements = [part.strip(WS) for part in split_outside(text, ",")]
    if not all(elements):
        raise MalformedMessage(f"empty element in list {text!r}")
    return elements


class Params:
    """An ordered, immutable list of `;name=value` parameters.

    Values are kept exactly as received (a quoted value keeps its quotes) so a
    message is forwarded unchanged; `get` gives the unquoted value. Names compare
    case-insensitively, as RFC 3261 §7.3.1 asks.
    """

    __slots__ = ("items",)

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self.items: tuple[tuple[str, str | None], ...] = tuple(items)

    def _find(self, name: str) -> int:
        for index, (item_name, _) in enumerate(self.items):
            if item_name == name:  # names are nearly always written as we ask for them
                return index
        key = name.lower()
        for index, (item_name, _) in enumerate(self.items):
            if item_name.lower() == key:
                return index
        return -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Params) and self.items == other.items

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Params({list(self.items)!r})"

    def raw(self, name: str) -> str | None:
        """The value as written (quotes included), None if absent or valueless."""
        index = self._find(name)
        return None if index < 0 else self.items[index][1]

    def get(self, name: str) -> str | None:
        """The unquoted value, None if the parameter is absent or has no value."""
        value = self.raw(name)
        return None if value is None else unquote(value)

    def with_param(self, name: str, value: str | None = None, *, quoted: bool = False) -> Params:
        """A copy with `name` set (replaced in place, or appended)."""
        raw = quote(value) if quoted and value is not None else value
        index = self._find(name)
        if index < 0:
            return Params((*self.items, (name, raw)))
        items = list(self.items)
        items[index] = (items[index][0], raw)
        return Params(items)

    def without(self, name: str) -> Params:
        key = name.lower()
        return Params(item for item in self.items if item[0].lower() != key)

    def __str__(self) -> str:
        return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self.items)


def parse_params(text: str) -> Params:
    """Parse `;a=b ; c ;d="x y"` (leading semicolon included) with LWS anywhere legal."""
    items: list[tuple[str, str | None]] = []
    stripped = text.strip(WS)
    if not stripped:
        return Params()
    if not stripped.startswith(";"):
        raise MalformedMessage(f"expected ';' before parameters, found {stripped!r}")
    for chunk in split_outside(stripped[1:], ";"):
        name, eq, value = chunk.partition("=")
        name = name.strip(WS)
        if not is_token(name):
            raise MalformedMessage(f"bad parameter name {name!r}" if name else "empty parameter")
        if not eq:
            items.append((name, None))
            continue
        value = value.strip(WS)
        if value.startswith('"'):
            unquote(value)  # validates: one whole quoted string
        elif not value or not VALUE_CHARS.issuperset(value):
            raise MalformedMessage(f"bad value for parameter {name!r}: {value!r}")
        items.append((name, value))
    return Params(items)
