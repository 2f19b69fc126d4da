"""Standard input to the peer, the peer to standard output, with proof it arrived whole.

One QUIC stream carries both directions (the offerer opens it with a four-byte
tag so the answerer sees it even before there is data). The message channel
carries control: pings that measure the round trip, and at the end of each
direction the byte count and SHA-256 of what was sent, which the receiver
compares with what it got. The run ends when both directions have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from peerline.errors import PeerlineError
from peerline.peer.description import Kind
from peerline.peer.link import Link
from peerline.peer.terminal import ThreadedReader, ThreadedWriter
from peerline.session.errors import SessionClosed
from peerline.session.quic import PeerSession

STREAM_TAG = b"PLS1"
_PINGS = 5
_DIGEST_WAIT = 10.0


@dataclass(slots=True, kw_only=True)
class Report:
    """What one side saw; `peerline … --report FILE` writes it as JSON."""

    role: str
    connected: bool = False
    path: str | None = None
    """`direct` or `relay`."""
    local_type: str | None = None
    remote_type: str | None = None
    local_address: str | None = None
    remote_address: str | None = None
    gather_ms: float | None = None
    setup_ms: float | None = None
    rtt_ms: float | None = None
    sent_bytes: int = 0
    sent_sha256: str | None = None
    send_seconds: float | None = None
    received_bytes: int = 0
    received_sha256: str | None = None
    receive_seconds: float | None = None
    verified: bool | None = None
    """What we received matches what the peer says it sent (None: it said nothing)."""
    peer_verified: bool | None = None
    """The peer's verdict on what we sent."""
    error: str | None = None

    @property
    def receive_mbps(self) -> float | None:
        if not self.receive_seconds or not self.received_bytes:
            return None
        return self.received_bytes * 8 / self.receive_seconds / 1e6

    @property
    def send_mbps(self) -> float | None:
        if not self.send_seconds or not self.sent_bytes:
            return None
        return self.sent_bytes * 8 / self.send_seconds / 1e6

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["receive_mbps"] = self.receive_mbps
        data["send_mbps"] = self.send_mbps
        return data


def describe_link(link: Link, report: Report) -> None:
    path = link.path
    report.connected = True
    report.path = "relay" if path.relayed else "direct"
    report.local_type, report.remote_type = path.local_type, path.remote_type
    report.local_address, report.remote_address = path.local_address, path.remote_address
    report.gather_ms = round(link.timings.gathered * 1000, 1)
    report.setup_ms = round(link.timings.setup * 1000, 1)


class _Control:
    """The message channel: pings answered, pongs timed, digests waited for."""

    def __init__(self, link: Link) -> None:
        self._session = link.session
        self._loop = asyncio.get_running_loop()
        self._pongs: dict[int, asyncio.Future[float]] = {}
        self.digest: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self.receipt: asyncio.Future[dict[str, Any]] = self._loop.create_future()

    async def run(self) -> None:
        while True:
            try:
                raw = await self._session.receive_message()
            except SessionClosed:
                return
            try:
                message = json.loads(raw)
                kind = message["t"]
            except (ValueError, KeyError, TypeError):
                continue  # a peer speaking a later version: ignore what we do not know
            if kind == "ping":
                await self._send({"t": "pong", "id": message.get("id")})
            elif kind == "pong":
                waiter = self._pongs.pop(message.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(self._loop.time())
            elif kind == "done" and not self.digest.done():
                self.digest.set_result(message)
            elif kind == "received" and not self.receipt.done():
                self.receipt.set_result(message)

    async def _send(self, message: dict[str, Any]) -> None:
        await self._session.send_message(json.dumps(message).encode())

    async def rtt(self) -> float | None:
        """Median round trip of a few pings over the session, in seconds."""
        samples = []
        for number in range(_PINGS):
            waiter: asyncio.Future[float] = self._loop.create_future()
            self._pongs[number] = waiter
            sent = self._loop.time()
            await self._send({"t": "ping", "id": number})
            with contextlib.suppress(TimeoutError):
                samples.append(await asyncio.wait_for(waiter, 5.0) - sent)
        return statistics.median(samples) if samples else None

    async def done(self, sent: int, digest: str) -> None:
        await self._send({"t": "done", "bytes": sent, "sha256": digest})

    async def received(self, count: int, verified: bool | None) -> None:
        await self._send({"t": "received", "bytes": count, "verified": verified})


async def pipe(link: Link, stdin: ThreadedReader, stdout: ThreadedWriter, report: Report) -> None:
    """Carry both directions to their end, filling in `report`; a failure (the path
    lost, the peer gone) is raised as the one `PeerlineError` that says what happened."""
    try:
        await _pipe(link, stdin, stdout, report)
    except BaseExceptionGroup as group:
        raise _first_explained(group, link.session) from None


def _first_explained(
    group: BaseExceptionGroup[BaseException], session: PeerSession
) -> BaseException:
    """The first error in `group` a person can be told in one line, else the group.
    A stream's writer says only "Connection lost" when the session ends under it:
    the session knows why."""
    for error in group.exceptions:
        if isinstance(error, ConnectionResetError) and session.ended is not None:
            return SessionClosed(session.ended.reason, session.ended.detail)
        if isinstance(error, BaseExceptionGroup):
            inner = _first_explained(error, session)
            if inner is not error:
                return inner
        elif isinstance(error, PeerlineError):
            return error
    return group


async def _pipe(link: Link, stdin: ThreadedReader, stdout: ThreadedWriter, report: Report) -> None:
    loop = asyncio.get_running_loop()
    session = link.session
    control = _Control(link)
    async with asyncio.TaskGroup() as group:
        control_task = group.create_task(control.run())
        if link.kind is Kind.OFFER:
            reader, writer = await session.open_stream()
            writer.write(STREAM_TAG)
        else:
            reader, writer = await session.accept_stream()
        rtt = await control.rtt()
        report.rtt_ms = None if rtt is None else round(rtt * 1000, 2)

        async def send() -> None:
            digest = hashlib.sha256()
            started = loop.time()
            while chunk := await stdin.read():
                digest.update(chunk)
                report.sent_bytes += len(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()  # no drain after this: the stream may be finished both ways
            report.sent_sha256 = digest.hexdigest()
            await control.done(report.sent_bytes, report.sent_sha256)
            # The peer's receipt is what says our data arrived: only then may we close.
            receipt = await asyncio.shield(control.receipt)
            report.send_seconds = loop.time() - started
            report.peer_verified = receipt.get("verified")

        async def receive() -> None:
            digest = hashlib.sha256()
            started: float | None = None
            if link.kind is Kind.ANSWER:
                tag = await reader.readexactly(len(STREAM_TAG))
                if tag != STREAM_TAG:
                    raise PeerlineError("the peer's stream is not a peerline pipe")
            while chunk := await reader.read(256 * 1024):
                if started is None:
                    started = loop.time()
                digest.update(chunk)
                report.received_bytes += len(chunk)
                await stdout.write(chunk)
            await stdout.close()
            report.received_sha256 = digest.hexdigest()
            if started is not None:
                report.receive_seconds = loop.time() - started
            with contextlib.suppress(TimeoutError):
                said = await asyncio.wait_for(asyncio.shield(control.digest), _DIGEST_WAIT)
                report.verified = (
                    said.get("bytes") == report.received_bytes
                    and said.get("sha256") == report.received_sha256
                )
            await control.received(report.received_bytes, report.verified)

        await asyncio.gather(send(), receive())
        control_task.cancel()
