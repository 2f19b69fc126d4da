"""The registrar (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 §6 Outbound), with no I/O.

It is handed a REGISTER that was already authenticated for `aor`, the flow it
came in on and the time, and answers with the response to send; bindings go
into the location store. Whatever the outcome, a request either applies fully
or not at all: every contact is checked before the first binding changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from peerline.sip.errors import MalformedMessage
from peerline.sip.fields import NameAddress
from peerline.sip.flow import Flow
from peerline.sip.location import Binding, LocationStore
from peerline.sip.message import Request, Response
from peerline.sip.uri import SipUri

#: What this registrar understands (Supported, Require).
SUPPORTED = ("path", "outbound")


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    """Binding lifetimes, limits, and the keepalive interval asked of Outbound phones."""

    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400
    #: Bindings per address-of-record; more get 403 (a phone gone wild, or an attack).
    max_contacts: int = 16
    #: RFC 5626 §5.4 Flow-Timer: how often an Outbound phone must send a keepalive.
    flow_timer: int = 120

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if self.max_contacts < 1 or self.flow_timer < 1:
            raise ValueError("max_contacts and flow_timer must be positive")


@dataclass(frozen=True, slots=True)
class _Change:
    key: str
    binding: Binding | None  # None: remove the binding with this key


class Registrar:
    """Applies REGISTER requests to a location store."""

    def __init__(self, store: LocationStore, config: RegistrarConfig | None = None) -> None:
        self.store = store
        self.config = config or RegistrarConfig()

    def register(
        self, request: Request, aor: str, flow: Flow, now: float, *, to_tag: str
    ) -> Response:
        """Apply `request` to `aor`'s bindings; the response says how it went."""
        try:
            return self._register(request, aor, flow, now, to_tag)
        except MalformedMessage as error:
            return Response.for_request(request, 400, error.reason, to_tag=to_tag)

    def _register(
        self, request: Request, aor: str, flow: Flow, now: float, to_tag: str
    ) -> Response:
        config = self.config
        current = {b.key: b for b in self.store.lookup(aor, now)}
        call_id, cseq = request.call_id, request.cseq.number
        if request.contact_wildcard:
            if request.expires != 0:
                return Response.for_request(
                    request, 400, "Contact: * needs Expires: 0", to_tag=to_tag
                )
            for binding in current.values():
                if binding.call_id == call_id and binding.cseq >= cseq:
                    return Response.for_request(request, 500, "Out of order", to_tag=to_tag)
            for key in current:
                self.store.remove(aor, key)
            return self._ok(request, aor, now, to_tag, outbound=False)
        supported = {t.lower() for t in request.option_tags("Supported")}
        paths = tuple(str(p.uri) for p in request.paths)
        first_hop_outbound = len(request.vias) == 1 or (
            bool(request.paths) and _ob(request.paths[0])
        )
        changes: list[_Change] = []
        any_outbound = False
        for contact in request.contacts:
            expires = contact.expires
            if expires is None:
                expires = request.expires
            if expires is None:
                expires = config.default_expires
            expires = min(expires, config.max_expires)
            if 0 < expires < config.min_expires:
                return Response.for_request(
                    request,
                    423,
                    to_tag=to_tag,
                    extra=(("Min-Expires", str(config.min_expires)),),
                )
            instance, reg_id = contact.instance, contact.reg_id
            outbound = instance is not None and reg_id is not None and "outbound" in supported
            if outbound and not first_hop_outbound:
                return Response.for_request(request, 439, to_tag=to_tag)
            if not outbound:
                instance = reg_id = None
            any_outbound = any_outbound or outbound
            key = f"{instance} {reg_id}" if outbound else _uri_key(contact)
            old = current.get(key)
            if old is not None and not outbound and old.call_id == call_id and old.cseq >= cseq:
                return Response.for_request(request, 500, "Out of order", to_tag=to_tag)
            if expires == 0:
                changes.append(_Change(key, None))
                continue
            params = contact.params.without("expires")
            shown = str(NameAddress(contact.uri, contact.display_name, params))
            binding = Binding(
                aor=aor,
                key=key,
                uri=str(contact.uri),
                contact=shown,
                q=1.0 if contact.q is None else contact.q,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                flow=flow,
                path=paths,
                instance=instance,
                reg_id=reg_id,
            )
            changes.append(_Change(key, binding))
        after = set(current)
        for change in changes:
            if change.binding is None:
                after.discard(change.key)
            else:
                after.add(change.key)
        if len(after) > config.max_contacts:
            return Response.for_request(
                request, 403, f"At most {config.max_contacts} contacts", to_tag=to_tag
            )
        for change in changes:
            if change.binding is None:
                self.store.remove(aor, change.key)
            else:
                self.store.put(change.binding)
        extra: list[tuple[str, str]] = [("Path", p) for p in request.headers.get_all("Path")]
        return self._ok(request, aor, now, to_tag, outbound=any_outbound, extra=extra)

    def _ok(
        self,
        request: Request,
        aor: str,
        now: float,
        to_tag: str,
        *,
        outbound: bool,
        extra: list[tuple[str, str]] | None = None,
    ) -> Response:
        """200 listing every binding of the AoR with its remaining time (§10.3 step 8)."""
        items = [
            ("Contact", f"{b.contact};expires={b.remaining(now)}")
            for b in self.store.lookup(aor, now)
        ]
        items.extend(extra or ())
        if outbound:
            items.append(("Require", "outbound"))
            items.append(("Flow-Timer", str(self.config.flow_timer)))
        items.append(("Supported", ", ".join(SUPPORTED)))
        return Response.for_request(request, 200, to_tag=to_tag, extra=tuple(items))


def _ob(path: NameAddress) -> bool:
    return isinstance(path.uri, SipUri) and path.uri.ob


def _uri_key(contact: NameAddress) -> str:
    """A key under which RFC 3261 §19.1.4-equivalent contact URIs collide."""
    uri = contact.uri
    if not isinstance(uri, SipUri):
        return str(uri)
    params = ";".join(
        sorted(
            f"{n.lower()}={(v or '').lower()}"
            for n, v in uri.params
            if n.lower() in ("user", "ttl", "method", "maddr", "transport")
        )
    )
    host = uri.host.lower()
    return f"{uri.scheme}:{uri.user or ''}@{host}:{uri.port or ''};{params}"
