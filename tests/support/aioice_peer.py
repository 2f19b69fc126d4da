"""One ICE peer, aioice's or peerline's, for the aioice interop lab test and bench/bench_ice.py.

    python -m tests.support.aioice_peer --impl aioice --role controlling \
        --out a.txt --in b.txt --stun 203.0.113.1:3478 \
        [--turn 203.0.113.1:3478 --user U --password P --relay-only] \
        [--mode datagrams|quic] [--bulk-mb 10]

Run inside a lab namespace. Both implementations write and read the same text,
RFC 8839 attribute lines (`a=ice-ufrag`, `a=ice-pwd`, `a=candidate:…`,
`a=end-of-candidates`) and an RFC 8122 `a=fingerprint` line: aioice's side
writes its candidates with aioice's `Candidate.to_sdp()` and reads the peer's
with `Candidate.from_sdp()`, so the candidates really cross as text. The local
description goes to `--out` (atomically) once gathering is over; the peer's is
awaited at `--in`.

`--mode datagrams`: `--count` numbered datagrams each way over the selected pair,
sent again and again until the peer has them all. `--mode quic`: a
`peerline.session.quic.PeerSession` over the ICE path (for aioice, over
`AioicePath` below), one byte on a stream and back, then `--bulk-mb` megabytes
client -> server checked by SHA-256. Both print one JSON object: the selected
pair as this side sees it, what arrived, and CLOCK_MONOTONIC instants (shared by
every namespace of the machine, so the two sides' figures can be compared):
`applied_at` (both descriptions known to this side, checks may start),
`connected_at` (a nominated, selected pair), `first_byte_at` (quic, server side:
the first application byte arrived). Every wait is bounded; a failure prints
`connected: false` with the reason and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import aioice

from peerline import aio
from peerline.ice.aio import IceTransport
from peerline.ice.config import IceConfig, Role
from peerline.ice.gather import (
    CandidatePolicy,
    IceTransportConfig,
    StunServer,
    TurnServer,
)
from peerline.lab.lab import Lab
from peerline.net import format_address, split_host_port
from peerline.session.config import SessionRole
from peerline.session.identity import Fingerprint, Identity
from peerline.session.path import PathInfo, PathListener
from peerline.session.quic import PeerSession
from peerline.session.selftest import write_random
from tests.support.ice_peer import (
    Counter,
    exchange_datagrams,
    read_when_there,
    run_drivers,
    write_atomically,
)

MODULE = "tests.support.aioice_peer"
CHUNK = 64 * 1024


class Impl(Enum):
    AIOICE = "aioice"
    PEERLINE = "peerline"


class Mode(Enum):
    DATAGRAMS = "datagrams"
    QUIC = "quic"


# -- the description text both sides exchange -----------------------------------------------


def description_lines(text: str) -> dict[str, list[str]]:
    """Attribute values by name (`candidate`, `ice-ufrag`, ...), `a=` and CRs stripped."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip().removeprefix("a=")
        name, _, value = line.partition(":")
        if name:
            found.setdefault(name, []).append(value)
    return found


def peer_fingerprint(text: str) -> Fingerprint:
    values = description_lines(text).get("fingerprint")
    if not values:
        raise ValueError("the peer's description has no a=fingerprint line")
    return Fingerprint.parse(values[0])


# -- aioice's side --------------------------------------------------------------------------


def aioice_selected(connection: aioice.Connection) -> PathInfo | None:
    """The nominated pair of component 1. aioice has no public accessor for it, so this
    reads its `_nominated` table: for reporting only, nothing is changed."""
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return PathInfo(
        local_type=local.type,
        remote_type=remote.type,
        local_address=format_address((local.host, local.port)),
        remote_address=format_address((remote.host, remote.port)),
        relayed="relay" in (local.type, remote.type),
    )


class AioicePath:
    """A `DatagramPath` over an aioice `Connection` once `connect()` has returned.

    aioice's send and receive are coroutines; the session's `send` is not. So sends
    go through a queue to one owned sender task, and one owned receiver task feeds
    `listener`. `run()` owns both tasks and ends (with the first error) when the
    connection does.
    """

    def __init__(self, connection: aioice.Connection) -> None:
        self.connection = connection
        self.listener: PathListener | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()

    def send(self, data: bytes) -> None:
        self._outgoing.put_nowait(data)

    def describe(self) -> PathInfo | None:
        return aioice_selected(self.connection)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_loop())
            group.create_task(self._receive_loop())

    async def _send_loop(self) -> None:
        while True:
            data = await self._outgoing.get()
            try:
                await self.connection.send(data)
            except ConnectionError:
                return  # closed: as UDP would, drop it

    async def _receive_loop(self) -> None:
        while True:
            try:
                data = await self.connection.recv()
            except ConnectionError as error:
                if self.listener is not None:
                    self.listener.path_lost(f"aioice: {error}")
                return
            if self.listener is not None:
                self.listener.datagram_received(data)


class AioicePeer:
    """An aioice `Connection` gathering, reading the peer's text, connecting."""

    def __init__(self, args: argparse.Namespace) -> None:
        turn = split_host_port(args.turn, 3478) if args.turn else None
        self.connection = aioice.Connection(
            ice_controlling=args.role == "controlling",
            stun_server=split_host_port(args.stun, 3478) if args.stun else None,
            turn_server=turn,
            turn_username=args.user,
            turn_password=args.password,
            use_ipv6=False,  # the lab is IPv4; aioice would otherwise offer ::1-less v6 too
            transport_policy=(
                aioice.TransportPolicy.RELAY if args.relay_only else aioice.TransportPolicy.ALL
            ),
        )
        self.path = AioicePath(self.connection)
        self._runner: asyncio.Task[None] | None = None

    async def gather(self) -> str:
        connection = self.connection
        await connection.gather_candidates()
        lines = [
            f"a=ice-ufrag:{connection.local_username}",
            f"a=ice-pwd:{connection.local_password}",
        ]
        lines += [f"a=candidate:{candidate.to_sdp()}" for candidate in connection.local_candidates]
        lines.append("a=end-of-candidates")
        return "".join(f"{line}\n" for line in lines)

    async def apply(self, text: str) -> None:
        attributes = description_lines(text)
        self.connection.remote_username = attributes["ice-ufrag"][0]
        self.connection.remote_password = attributes["ice-pwd"][0]
        for value in attributes.get("candidate", []):
            await self.connection.add_remote_candidate(aioice.Candidate.from_sdp(value))
        if "end-of-candidates" in attributes:
            await self.connection.add_remote_candidate(None)

    async def connect(self, timeout: float) -> PathInfo | None:
        async with asyncio.timeout(timeout):
            await self.connection.connect()
        self._runner = asyncio.get_running_loop().create_task(self.path.run())
        return aioice_selected(self.connection)

    @property
    def failures(self) -> list[str]:
        return []

    @property
    def role_now(self) -> str:
        """After a role conflict, the role aioice ended in."""
        return "controlling" if self.connection.ice_controlling else "controlled"

    async def close(self) -> None:
        await self.connection.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._runner


# -- peerline's side ------------------------------------------------------------------------


class PeerlinePeer:
    """A peerline `IceTransport` doing the same."""

    def __init__(self, args: argparse.Namespace) -> None:
        stun: tuple[StunServer, ...] = ()
        if args.stun:
            host, port = split_host_port(args.stun, 3478)
            stun = (StunServer(host=host, port=port),)
        turn: tuple[TurnServer, ...] = ()
        if args.turn:
            host, port = split_host_port(args.turn, 3478)
            turn = (TurnServer(host=host, port=port, username=args.user, password=args.password),)
        self.config = IceTransportConfig(
            stun_servers=stun,
            turn_servers=turn,
            ipv6=False,
            policy=CandidatePolicy.RELAY if args.relay_only else CandidatePolicy.ALL,
            ice=IceConfig()
            if args.nomination_delay is None
            else IceConfig(nomination_delay=args.nomination_delay),
        )
        self.role = Role.CONTROLLING if args.role == "controlling" else Role.CONTROLLED
        self.transport: IceTransport | None = None

    @property
    def path(self) -> IceTransport:
        assert self.transport is not None
        return self.transport

    async def gather(self) -> str:
        self.transport = IceTransport(self.config, role=self.role, name=self.role.value)
        await self.transport.start()
        await self.transport.gathered(30)
        return self.transport.local_description()

    async def apply(self, text: str) -> None:
        self.path.set_remote_description(text)

    async def connect(self, timeout: float) -> PathInfo | None:
        return await self.path.connected(timeout)

    @property
    def failures(self) -> list[str]:
        return [] if self.transport is None else self.transport.server_failures

    @property
    def role_now(self) -> str:
        return self.path.role.value

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()


# -- both peers, run from the host ------------------------------------------------------------


def run_pair(
    lab: Lab,
    directory: Path,
    args_a: Sequence[str],
    args_b: Sequence[str],
    *,
    hosts: tuple[str, str] = ("peer-a", "peer-b"),
    timeout: float = 90.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """This driver on `hosts[0]` with `args_a` and on `hosts[1]` with `args_b`, their
    descriptions crossing through files in `directory`; the two JSON reports. Both
    processes are gone when this returns, whatever happened."""
    reports = []
    for out, err in run_drivers(lab, MODULE, directory, hosts, (args_a, args_b), timeout):
        lines = out.strip().splitlines()
        if not lines:
            reports.append({"connected": False, "error": f"no report; stderr: {err[-2000:]}"})
        else:
            reports.append(json.loads(lines[-1]))
    return reports[0], reports[1]


# -- what both sides do ---------------------------------------------------------------------


async def quic_client(session: PeerSession, bulk: int, timeout: float) -> dict[str, Any]:
    """One byte there and back, then `bulk` bytes; the server's verdict on them."""
    async with asyncio.timeout(timeout):
        await session.connect(timeout)
        reader, writer = await session.open_stream()
        writer.write(b"1")
        echoed = await reader.readexactly(1)
        result: dict[str, Any] = {"echoed": echoed == b"1", "echo_at": time.monotonic()}
        if bulk:
            _, bulk_writer = await session.open_stream()
            sent = await write_random(bulk_writer, bulk)
            verdict = json.loads(await session.receive_message())
            verdict["verified"] = verdict.pop("sha256") == sent
            result["bulk"] = verdict
        await session.send_message(b"bye")
        return result


async def quic_server(session: PeerSession, bulk: int, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        await session.connect(timeout)
        reader, writer = await session.accept_stream()
        first = await reader.readexactly(1)
        result: dict[str, Any] = {"first_byte_at": time.monotonic(), "first_byte": first == b"1"}
        writer.write(first)
        if bulk:
            bulk_reader, _ = await session.accept_stream()
            digest, size, started = hashlib.sha256(), 0, None
            while chunk := await bulk_reader.read(CHUNK):
                started = started or time.monotonic()
                digest.update(chunk)
                size += len(chunk)
            seconds = time.monotonic() - (started or time.monotonic())
            mbps = size * 8 / seconds / 1e6 if seconds > 0 else 0.0
            verdict = {"bytes": size, "seconds": round(seconds, 4), "mbps": round(mbps, 2)}
            await session.send_message(
                json.dumps({**verdict, "sha256": digest.hexdigest()}).encode()
            )
            result["bulk"] = verdict
        result["bye"] = await session.receive_message() == b"bye"
        return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    impl, mode = Impl(args.impl), Mode(args.mode)
    peer: AioicePeer | PeerlinePeer = (
        AioicePeer(args) if impl is Impl.AIOICE else PeerlinePeer(args)
    )
    identity = Identity.ephemeral(args.role)
    try:
        started = time.monotonic()
        local = await peer.gather()
        write_atomically(args.out, local + identity.fingerprint.format_attribute() + "\n")
        remote = await read_when_there(args.inp, args.timeout, poll=0.01)
        gathered_at = time.monotonic()
        await peer.apply(remote)
        applied_at = time.monotonic()
        info = await peer.connect(args.timeout)
        connected_at = time.monotonic()
        result: dict[str, Any] = {
            "impl": impl.value,
            "role": args.role,
            "connected": True,
            "path": None if info is None else dataclasses.asdict(info),
            "gather_s": round(gathered_at - started, 4),
            "applied_at": applied_at,
            "connected_at": connected_at,
            "server_failures": peer.failures,
        }
        if mode is Mode.DATAGRAMS:
            counter = Counter()
            peer.path.listener = counter
            tags = (args.out.stem, args.inp.stem)
            result |= await exchange_datagrams(
                peer.path, counter, tags, 1, args.count, args.timeout
            )
            if args.hold:
                await asyncio.sleep(args.hold)  # only ICE's consent checks cross meanwhile
                second = await exchange_datagrams(
                    peer.path, counter, tags, 2, args.count, args.timeout
                )
                result["after_hold"] = second
            result["final_role"] = peer.role_now
        else:
            controlling = args.role == "controlling"
            session = PeerSession(
                peer.path,
                role=SessionRole.for_ice(controlling=controlling),
                identity=identity,
                peer_fingerprint=peer_fingerprint(remote),
            )
            peer.path.listener = session
            try:
                work = quic_client if controlling else quic_server
                result |= await work(session, int(args.bulk_mb * 1_000_000), args.timeout)
            finally:
                await session.close(linger=2)
        return result
    finally:
        await peer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--impl", choices=[i.value for i in Impl], required=True)
    parser.add_argument("--role", choices=("controlling", "controlled"), required=True)
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.DATAGRAMS.value)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--stun", help="IP:PORT of a STUN server")
    parser.add_argument("--turn", help="IP:PORT of a TURN server (UDP)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--relay-only", action="store_true")
    parser.add_argument(
        "--nomination-delay",
        type=float,
        help="peerline: seconds the controlling side waits for a better pair (default: its own)",
    )
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--bulk-mb", type=float, default=0.0)
    parser.add_argument(
        "--hold", type=float, default=0.0, help="seconds of silence, then a second round"
    )
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        result = aio.run(run(args))
    except Exception as error:  # any failure is data for the test or bench to show
        print(json.dumps({"connected": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
