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


class MemoryLocationStore:
    """All bindings in a dict of dicts; an expiry heap with lazy deletion."""

    def __init__(self) -> None:
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._by_flow: dict[Flow, set[tuple[str, str]]] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._count = 0

    def lookup(self, aor: str, now: float) -> list[Binding]:
        found = self._by_aor.get(aor)
        if not found:
            return []
        live = [b for b in found.values() if b.expires_at > now]
        live.sort(key=lambda b: -b.q)
        return live

    def put(self, binding: Binding) -> None:
        bindings = self._by_aor.setdefault(binding.aor, {})
        old = bindings.get(binding.key)
        if old is None:
            self._count += 1
        else:
            self._unindex_flow(old)
        bindings[binding.key] = binding
        if binding.outbound:
            self._by_flow.setdefault(binding.flow, set()).add((binding.aor, binding.key))
        heapq.heappush(self._heap, (binding.expires_at, binding.aor, binding.key))

    def _unindex_flow(self, binding: Binding) -> None:
        if not binding.outbound:
            return
        keys = self._by_flow.get(binding.flow)
        if keys is not None:
            keys.discard((binding.aor, binding.key))
            if not keys:
                del self._by_flow[binding.flow]

    def remove(self, aor: str, key: str) -> None:
        bindings = self._by_aor.get(aor)
        if bindings is None:
            return
        old = bindings.pop(key, None)
        if old is None:
            return
        self._count -= 1
        self._unindex_flow(old)
        if not bindings:
            del self._by_aor[aor]

    def remove_flow(self, flow: Flow) -> list[Binding]:
        keys = self._by_flow.pop(flow, set())
        removed = []
        for aor, key in keys:
            binding = self._by_aor.get(aor, {}).get(key)
            if binding is not None and binding.flow == flow:
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
            binding = self._by_aor.get(aor, {}).get(key)
            if binding is not None and binding.expires_at <= now:
                self.remove(aor, key)
                gone += 1
        if len(heap) > 4 * self._count + 1024:  # refreshed bindings leave stale entries
            self._heap = [
                (b.expires_at, b.aor, b.key) for bs in self._by_aor.values() for b in bs.values()
            ]
            heapq.heapify(self._heap)
        return gone

    def count(self) -> int:
        return self._count
