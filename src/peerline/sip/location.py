"""Where each address-of-record can be reached: bindings, and the stores that keep them.

The registrar writes bindings, the proxy reads them. `LocationStore` is the seam
for other stores (several supernodes sharing one); `MemoryLocationStore` keeps
everything in this process, with an expiry heap so that expiring a million
bindings never scans them all.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Protocol

from peerline.sip.flow import Flow
from peerline.sip.methods import Transport


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact of one address-of-record (RFC 3261 §10), as the registrar accepted it."""

    #: The address-of-record, `user@domain` in canonical form.
    aor: str
    #: What identifies this binding among the AoR's: `instance reg-id` for RFC 5626
    #: registrations, else the contact URI.
    key: str
    #: The contact URI: the Request-URI of requests sent to this binding.
    uri: str
    #: The Contact header value to echo in 200 (URI plus its parameters, no expires).
    contact: str
    q: float
    expires_at: float
    call_id: str
    cseq: int
    #: The flow the REGISTER came in on: where requests go when the phone is behind a NAT.
    flow: Flow
    #: Path (RFC 3327) URIs, in order: the Route set towards this binding.
    path: tuple[str, ...] = ()
    instance: str | None = None
    reg_id: int | None = None

    @property
    def outbound(self) -> bool:
        """An RFC 5626 binding: reachable only over its flow, removed when it fails."""
        return self.reg_id is not None and self.instance is not None

    def remaining(self, now: float) -> int:
        return max(0, round(self.expires_at - now))


class LocationStore(Protocol):
    """Bindings by address-of-record. Every method gets `now`; none reads a clock."""

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of `aor`, highest q first."""
        ...

    def put(self, binding: Binding) -> None:
        """Add or replace the binding with the same (aor, key)."""
        ...

    def remove(self, aor: str, key: str) -> None: ...

    def remove_flow(self, flow: Flow) -> list[Binding]:
        """Drop the outbound bindings that live on `flow` (it failed); return them."""
        ...

    def has_flow(self, flow: Flow) -> bool:
        """Whether an outbound binding lives on `flow`."""
        ...

    def expire(self, now: float) -> int:
        """Forget bindings whose time is up; how many went."""
        ...

    def count(self) -> int: ...


#: A binding as the memory store keeps it: one tuple of strings and numbers only,
#: which the cyclic garbage collector stops tracking after its first look. With a
#: dataclass, a Flow and address tuples per binding, 100,000 bindings were a million
#: tracked objects, and every full collection stalled the loop for half a second.
_Row = tuple[
    str,  # key
    str,  # uri
    str,  # contact
    float,  # q
    float,  # expires_at
    str,  # call_id
    int,  # cseq
    str,  # flow: transport
    str,  # flow: local IP
    int,  # flow: local port
    str,  # flow: remote IP
    int,  # flow: remote port
    int,  # flow: connection
    tuple[str, ...],  # path
    str | None,  # instance
    int | None,  # reg_id
]
_TRANSPORTS = {t.value: t for t in Transport}


def _row(binding: Binding) -> _Row:
    flow = binding.flow
    return (
        binding.key,
        binding.uri,
        binding.contact,
        binding.q,
        binding.expires_at,
        binding.call_id,
        binding.cseq,
        flow.transport.value,
        flow.local[0],
        flow.local[1],
        flow.remote[0],
        flow.remote[1],
        flow.connection,
        tuple(binding.path),
        binding.instance,
        binding.reg_id,
    )


def _binding(aor: str, row: _Row) -> Binding:
    key, uri, contact, q, expires_at, call_id, cseq = row[:7]
    transport, local_ip, local_port, remote_ip, remote_port, connection = row[7:13]
    flow = Flow(
        _TRANSPORTS[transport], (local_ip, local_port), (remote_ip, remote_port), connection
    )
    return Binding(
        aor, key, uri, contact, q, expires_at, call_id, cseq, flow, row[13], row[14], row[15]
    )


class MemoryLocationStore:
    """All bindings in a dict of dicts of compact rows; an expiry heap with lazy
    deletion; an index of the flows Outbound bindings live on."""

    def __init__(self) -> None:
        self._by_aor: dict[str, dict[str, _Row]] = {}
        self._by_flow: dict[Flow, set[tuple[str, str]]] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._count = 0

    def lookup(self, aor: str, now: float) -> list[Binding]:
        found = self._by_aor.get(aor)
        if not found:
            return []
        live = [_binding(aor, row) for row in found.values() if row[4] > now]
        live.sort(key=lambda b: -b.q)
        return live

    def put(self, binding: Binding) -> None:
        rows = self._by_aor.setdefault(binding.aor, {})
        old = rows.get(binding.key)
        if old is None:
            self._count += 1
        else:
            self._unindex_flow(binding.aor, old)
        rows[binding.key] = _row(binding)
        if binding.outbound:
            self._by_flow.setdefault(binding.flow, set()).add((binding.aor, binding.key))
        heapq.heappush(self._heap, (binding.expires_at, binding.aor, binding.key))

    def _unindex_flow(self, aor: str, row: _Row) -> None:
        binding = _binding(aor, row)
        if not binding.outbound:
            return
        keys = self._by_flow.get(binding.flow)
        if keys is not None:
            keys.discard((aor, binding.key))
            if not keys:
                del self._by_flow[binding.flow]

    def remove(self, aor: str, key: str) -> None:
        rows = self._by_aor.get(aor)
        if rows is None:
            return
        old = rows.pop(key, None)
        if old is None:
            return
        self._count -= 1
        self._unindex_flow(aor, old)
        if not rows:
            del self._by_aor[aor]

    def remove_flow(self, flow: Flow) -> list[Binding]:
        keys = self._by_flow.pop(flow, set())
        removed = []
        for aor, key in keys:
            row = self._by_aor.get(aor, {}).get(key)
            if row is None:
                continue
            binding = _binding(aor, row)
            if binding.flow == flow:
                removed.append(binding)
                self.remove(aor, key)
        return removed

    def has_flow(self, flow: Flow) -> bool:
        return flow in self._by_flow

    def expire(self, now: float) -> int:
        heap = self._heap
        gone = 0
        while heap and heap[0][0] <= now:
            _, aor, key = heapq.heappop(heap)
            row = self._by_aor.get(aor, {}).get(key)
            if row is not None and row[4] <= now:
                self.remove(aor, key)
                gone += 1
        if len(heap) > 4 * self._count + 1024:  # refreshed bindings leave stale entries
            self._heap = [
                (row[4], aor, row[0]) for aor, rows in self._by_aor.items() for row in rows.values()
            ]
            heapq.heapify(self._heap)
        return gone

    def count(self) -> int:
        return self._count
