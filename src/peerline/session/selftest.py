"""`python -m peerline.session.selftest`: two peer sessions on this host, end to end.

Two fresh identities pin each other's fingerprints, connect over real UDP
sockets on 127.0.0.1, send a stream of random bytes (checked by SHA-256) and
messages both ways, and print what happened: the fingerprints, the time to
connect and the throughput. It shows that the session layer works on this
machine before any NAT is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from peerline import aio
from peerline.errors import PeerlineError
from peerline.session.config import SessionConfig, SessionRole
from peerline.session.identity import Fingerprint, Identity
from peerline.session.path import DatagramPath, PathListener
from peerline.session.quic import PeerSession
from peerline.session.udp import loopback_pair

CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class SelftestResult:
    setup_ms: float
    size: int
    seconds: float
    verified: bool
    messages_in_order: bool
    path: str

    @property
    def mbps(self) -> float:
        return self.size * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0


class ListenedPath(DatagramPath, Protocol):
    """A path that feeds the `listener` it is given (UdpPath, IceTransport)."""

    listener: PathListener | None


def facing_sessions(
    client_path: ListenedPath,
    server_path: ListenedPath,
    *,
    client: Identity,
    server: Identity,
    client_pins: Fingerprint | None = None,
    server_pins: Fingerprint | None = None,
    config: SessionConfig | None = None,
) -> tuple[PeerSession, PeerSession]:
    """A client and a server session over two paths that reach each other, each the
    listener of its path. Each pins the other's real fingerprint unless told otherwise."""
    client_session = PeerSession(
        client_path,
        role=SessionRole.CLIENT,
        identity=client,
        peer_fingerprint=client_pins or server.fingerprint,
        config=config,
    )
    server_session = PeerSession(
        server_path,
        role=SessionRole.SERVER,
        identity=server,
        peer_fingerprint=server_pins or client.fingerprint,
        config=config,
    )
    client_path.listener, server_path.listener = client_session, server_session
    return client_session, server_session


async def write_random(writer: asyncio.StreamWriter, size: int) -> str:
    """Write `size` random bytes and end the stream; their SHA-256, for the reader to match."""
    digest = hashlib.sha256()
    left = size
    while left > 0:
        chunk = os.urandom(min(CHUNK, left))
        digest.update(chunk)
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)
    writer.write_eof()
    return digest.hexdigest()


async def run_selftest(
    size: int, messages: int, config: SessionConfig | None = None
) -> SelftestResult:
    """Connect two sessions over loopback UDP, move `size` bytes and `messages` each way."""
    alice, bob = Identity.ephemeral("alice"), Identity.ephemeral("bob")
    path_a, path_b = await loopback_pair()
    client, server = facing_sessions(path_a, path_b, client=alice, server=bob, config=config)
    try:
        started = time.perf_counter()
        await asyncio.gather(client.connect(10), server.connect(10))
        setup_ms = (time.perf_counter() - started) * 1000

        async def send() -> str:
            _, writer = await client.open_stream()
            return await write_random(writer, size)

        async def receive() -> tuple[str, int]:
            reader, _ = await server.accept_stream()
            digest, count = hashlib.sha256(), 0
            while chunk := await reader.read(CHUNK):
                digest.update(chunk)
                count += len(chunk)
            return digest.hexdigest(), count

        started = time.perf_counter()
        sent, (digest, count) = await asyncio.gather(send(), receive())
        seconds = time.perf_counter() - started
        in_order = await _exchange_messages(client, server, messages)
        info = client.path_info
        return SelftestResult(
            setup_ms=setup_ms,
            size=count,
            seconds=seconds,
            verified=count == size and digest == sent,
            messages_in_order=in_order,
            path=str(info) if info else "none",
        )
    finally:
        await client.close(linger=1)
        await server.close(linger=1)
        path_a.close()
        path_b.close()


async def _exchange_messages(a: PeerSession, b: PeerSession, count: int) -> bool:
    async def send(session: PeerSession, tag: bytes) -> None:
        for n in range(count):
            await session.send_message(tag + b"%d" % n)

    async def receive(session: PeerSession) -> list[bytes]:
        return [await session.receive_message() for _ in range(count)]

    _, _, at_b, at_a = await asyncio.gather(send(a, b"a"), send(b, b"b"), receive(b), receive(a))
    return at_b == [b"a%d" % n for n in range(count)] and at_a == [b"b%d" % n for n in range(count)]


def _number_in(kind: type[float] | type[int], high: int) -> Callable[[str], float]:
    """An argparse type: a `kind` number from 0 to `high`, else one line saying so."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"not a {noun}: {text!r}") from None
        if not 0 <= value <= high:
            raise argparse.ArgumentTypeError(f"must be 0-{high}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--megabytes",
        type=_number_in(float, 10_000),
        default=10.0,
        metavar="MB",
        help="stream size (default 10)",
    )
    parser.add_argument(
        "--messages",
        type=_number_in(int, 1_000_000),
        default=100,
        metavar="N",
        help="messages each way (default 100)",
    )


def handle(args: argparse.Namespace) -> int:
    result = aio.run(run_selftest(int(args.megabytes * 1024 * 1024), int(args.messages)))
    print(f"connected in {result.setup_ms:.0f} ms ({result.path})")
    verdict = "SHA-256 verified" if result.verified else "DAMAGED"
    mib = result.size / 1048576
    print(f"{mib:.1f} MiB in {result.seconds:.2f} s: {result.mbps:.1f} Mbit/s, {verdict}")
    order = "in order" if result.messages_in_order else "OUT OF ORDER OR MISSING"
    print(f"{args.messages} messages each way, {order}")
    return 0 if result.verified and result.messages_in_order else 1


def main(argv: Sequence[str] | None = None) -> int:
    from peerline.cli import Parser  # noqa: PLC0415 - only when run on its own

    parser = Parser(prog="python -m peerline.session.selftest", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return handle(args)
    except PeerlineError as error:
        print(f"selftest: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
