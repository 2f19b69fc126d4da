"""Header fields as an ordered, immutable list, with compact and canonical names.

Each entry is one header line as received (folding undone), under its
canonical name: `v`, `VIA` and `via` all become `Via`. Unknown headers keep the
name they came with and their place in the list; nothing is dropped.
Comma-separated lists are split only for the headers RFC 3261 defines as
lists, never for WWW-Authenticate, Authorization, Date or unknown headers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

from peerline.sip._syntax import split_list

#: RFC 3261 §7.3.3 and later RFCs: compact form -> canonical name.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "Flow-Timer",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Organization",
    "Path",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}

#: Headers whose value is a comma-separated list (RFC 3261 §7.3.1).
LIST_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)


@functools.lru_cache(maxsize=1024)
def canonical_name(name: str) -> str:
    """`v` -> `Via`, `call-id` -> `Call-ID`; an unknown name is returned unchanged."""
    if len(name) == 1:
        compact = COMPACT_FORMS.get(name.lower())
        if compact:
            return compact
    return _CANONICAL.get(name.lower(), name)


@functools.lru_cache(maxsize=1024)
def _lower_canonical(name: str) -> str:
    return canonical_name(name).lower()


@functools.lru_cache(maxsize=1024)
def _lower(name: str) -> str:
    return name.lower()


class Headers:
    """Header lines in order. Lookups ignore case and accept compact forms.

    An index from lower-case canonical name to values is built with the list, so a
    lookup costs one dict access however many lines there are (an element reads
    a dozen headers of every message, several times).
    """

    __slots__ = ("_index", "_keys", "items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items: tuple[tuple[str, str], ...] = tuple(
            [(canonical_name(name), value) for name, value in items]
        )
        self._keys: tuple[str, ...] = tuple([_lower(name) for name, _ in self.items])
        index: dict[str, list[str]] = {}
        for key, (_, value) in zip(self._keys, self.items, strict=True):
            found = index.get(key)
            if found is None:
                index[key] = [value]
            else:
                found.append(value)
        self._index = index

    @staticmethod
    def _key(name: str) -> str:
        return _lower_canonical(name)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.items == other.items

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Headers({list(self.items)!r})"

    def get(self, name: str) -> str | None:
        """The value of the first line named `name`, or None."""
        found = self._index.get(_lower_canonical(name))
        return None if found is None else found[0]

    def get_all(self, name: str) -> list[str]:
        """The value of every line named `name`, in order."""
        found = self._index.get(_lower_canonical(name))
        return [] if found is None else list(found)

    def values(self, name: str) -> list[str]:
        """Every value of `name`: list headers split at commas, others one per line."""
        found = self._index.get(_lower_canonical(name))
        if found is None:
            return []
        if canonical_name(name) not in LIST_HEADERS:
            return list(found)
        if len(found) == 1 and "," not in found[0]:
            return split_list(found[0])  # one element: checked for emptiness all the same
        return [element for line in found for element in split_list(line)]

    def with_added(self, name: str, value: str) -> Headers:
        """A copy with a line appended at the end."""
        return Headers((*self.items, (name, value)))

    def with_first(self, name: str, value: str) -> Headers:
        """A copy with a line put above the first line of that name (Via, Record-Route),
        or at the top when there is none."""
        return self.edited(first=((name, value),))

    def with_set(self, name: str, value: str) -> Headers:
        """A copy where `name` has exactly this one value, in the place of the first old one."""
        return self.edited(set_to=((name, value),))

    def without(self, name: str) -> Headers:
        key = self._key(name)
        return Headers(item for k, item in zip(self._keys, self.items, strict=True) if k != key)

    def edited(
        self,
        *,
        set_to: Iterable[tuple[str, str]] = (),
        first: Iterable[tuple[str, str]] = (),
    ) -> Headers:
        """One copy with several edits: for each of `set_to`, that name gets exactly
        that one value, in the place of its first line (or at the end); then each of
        `first` goes above the first line of its name (or at the top), in order, so
        the last of `first` ends on top. What a proxy does to a request it forwards,
        for one copy, not four."""
        items = list(self.items)
        keys = list(self._keys)
        for name, value in set_to:
            key = self._key(name)
            places = [i for i, k in enumerate(keys) if k == key]
            if not places:
                items.append((name, value))
                keys.append(key)
                continue
            items[places[0]] = (items[places[0]][0], value)
            for index in reversed(places[1:]):
                del items[index]
                del keys[index]
        for name, value in first:
            key = self._key(name)
            index = next((i for i, k in enumerate(keys) if k == key), 0)
            items.insert(index, (name, value))
            keys.insert(index, key)
        return Headers(items)

    def with_first_value(self, name: str, value: str) -> Headers:
        """A copy where the first element of a list header is `value` instead (a Via
        stamped with received/rport), on a line of its own above the rest."""
        key = self._key(name)
        items = list(self.items)
        for index, item_key in enumerate(self._keys):
            if item_key == key:
                line = items[index][1]
                rest = split_list(line)[1:] if "," in line else []
                items[index : index + 1] = [(items[index][0], value)]
                if rest:
                    items.insert(index + 1, (items[index][0], ", ".join(rest)))
                return Headers(items)
        items.insert(0, (name, value))
        return Headers(items)

    def without_first_value(self, name: str) -> Headers:
        """A copy without the first element of a list header (popping a Route or Via),
        leaving the rest of that line in place."""
        key = self._key(name)
        items = list(self.items)
        for index, item_key in enumerate(self._keys):
            if item_key == key:
                rest = split_list(items[index][1])[1:]
                if rest:
                    items[index] = (items[index][0], ", ".join(rest))
                else:
                    del items[index]
                break
        return Headers(items)
