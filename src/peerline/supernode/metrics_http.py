"""Live figures of `peerline serve` as Prometheus text: GET /metrics, nothing else.

A deliberately tiny HTTP/1.x responder (an `asyncio.Protocol`, no tasks): it
reads one request head of at most 8 KiB within 5 s, answers it and closes. Any
other path or method gets 404/405. It listens on loopback unless told
otherwise, since the figures tell who uses the relay how much.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import cast

from peerline.turn.stats import TurnStats

_MAX_HEAD = 8192
_TIMEOUT = 5.0

#: One sample: (metric name, help, type, labels, value).
Sample = tuple[str, str, str, dict[str, str], float]


def turn_samples(stats: TurnStats) -> list[Sample]:
    """The TURN server's counters and gauges as samples."""
    out: list[Sample] = [
        ("peerline_turn_allocations", "Live TURN allocations", "gauge", {}, stats.allocations),
        ("peerline_turn_permissions", "Live TURN permissions", "gauge", {}, stats.permissions),
        ("peerline_turn_channels", "Live TURN channel bindings", "gauge", {}, stats.channels),
        (
            "peerline_turn_tcp_connections",
            "Live RFC 6062 peer connections (connecting, waiting for a bind, or bound)",
            "gauge",
            {},
            stats.tcp_connections,
        ),
    ]
    for name, value in (
        ("created", stats.allocations_created),
        ("deleted", stats.allocations_deleted),
        ("expired", stats.allocations_expired),
    ):
        out.append(
            (
                "peerline_turn_allocation_events_total",
                "Allocations created, deleted by their client, or expired",
                "counter",
                {"event": name},
                value,
            )
        )
    # Each metric's samples stay together, as the exposition format requires.
    for name, help_text, to_peers, from_peers in (
        ("packets", "Packets relayed", stats.packets_to_peers, stats.packets_from_peers),
        ("bytes", "Payload bytes relayed", stats.bytes_to_peers, stats.bytes_from_peers),
    ):
        for direction, value in (("to_peer", to_peers), ("from_peer", from_peers)):
            out.append(
                (
                    f"peerline_turn_relayed_{name}_total",
                    help_text,
                    "counter",
                    {"direction": direction},
                    value,
                )
            )
    out.append(
        ("peerline_turn_requests_total", "TURN requests received", "counter", {}, stats.requests)
    )
    refused = "Requests refused, by reason"
    out += [
        ("peerline_turn_refusals_total", refused, "counter", {"reason": reason}, count)
        for reason, count in sorted(stats.refusals.items())
    ]
    dropped = "Packets dropped without an answer, by reason"
    out += [
        ("peerline_turn_dropped_total", dropped, "counter", {"reason": reason}, count)
        for reason, count in sorted(stats.dropped.items())
    ]
    return out


def counter_samples(prefix: str, counters: dict[str, int]) -> list[Sample]:
    """A service's plain counters dict, one counter metric each."""
    return [
        (f"{prefix}_{name}_total", f"{prefix} {name.replace('_', ' ')}", "counter", {}, value)
        for name, value in sorted(counters.items())
    ]


def render(samples: Iterable[Sample]) -> str:
    """Prometheus text exposition format 0.0.4: HELP and TYPE once per metric name."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, help_text, kind, labels, value in samples:
        if name not in seen:
            seen.add(name)
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
        label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Connection(asyncio.Protocol):
    def __init__(self, body: Callable[[], str]) -> None:
        self._body = body
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(_TIMEOUT, self._transport.abort)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._answer(431, "Request Header Fields Too Large", b"")
            return
        request_line = bytes(self._buffer[: self._buffer.find(b"\r\n")])
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._answer(400, "Bad Request", b"")
        elif parts[0] not in (b"GET", b"HEAD"):
            self._answer(405, "Method Not Allowed", b"")
        elif parts[1].split(b"?", 1)[0] != b"/metrics":
            self._answer(404, "Not Found", b"not found\n")
        else:
            body = self._body().encode()
            self._answer(200, "OK", b"" if parts[0] == b"HEAD" else body, len(body))

    def _answer(self, status: int, reason: str, body: bytes, length: int | None = None) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n"
        )
        transport.write(head.encode() + body)
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class MetricsServer:
    """Serves `body()` at /metrics on (host, port)."""

    def __init__(self, host: str, port: int, body: Callable[[], str]) -> None:
        self.host = host
        self.port = port
        self._body = body
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._body), host=self.host, port=self.port, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
