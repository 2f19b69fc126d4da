"""Where a relayed packet's time goes in peerline's TURN server, split by stage.

    .venv/bin/python bench/profile_turn.py [--packets 200000] [--cprofile]

Makes one real allocation with a channel in the sans-IO core (through the same
requests a client sends), then times the relay path stage by stage: the core
alone in each direction, then the adapter's whole path in each direction with
the real system calls (datagrams go to a loopback socket nobody reads; the
kernel drops them once its buffer is full, which costs what a delivery does).
The gap to the end-to-end benchmark (bench_turn.py) is the event loop's wake-ups
and the receiving system calls. `--cprofile` prints the top functions of both
directions through the adapter.
"""

import argparse
import asyncio
import cProfile
import pstats
import socket
import time
from collections.abc import Callable

from peerline.aio import run
from peerline.stun import AttributeType, MessageBuilder, MessageClass, Method, long_term_key, parse
from peerline.stun.attributes import encode_byte
from peerline.supernode.transports import Transport, UdpRegistry
from peerline.supernode.turn_service import TurnService
from peerline.turn.auth import Credentials
from peerline.turn.channeldata import encode_channel_data
from peerline.turn.config import TurnConfig
from peerline.turn.policy import PeerPolicy
from peerline.users import User

REALM = "profile.test"
USER, PASSWORD = "alice", "wonderland"
LOCAL = ("127.0.0.1", 0)
#: Datagrams queued on the relay socket per timed drain (its buffer holds them all).
ROUND = 400


def per_call_us(function: Callable[[], object], count: int) -> float:
    """The best of five runs of `count / 5` calls: the machine is shared, the minimum is
    what the code costs."""
    each = max(1, count // 5)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(each):
            function()
        best = min(best, time.perf_counter() - start)
    return best / each * 1e6


def signed(builder: MessageBuilder, nonce: str) -> bytes:
    builder.add_text(AttributeType.USERNAME, USER)
    builder.add_text(AttributeType.REALM, REALM)
    builder.add_text(AttributeType.NONCE, nonce)
    return builder.encode(integrity_key=long_term_key(USER, REALM, PASSWORD))


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def drain_us(service: TurnService, relay: socket.socket, talker: socket.socket, n: int) -> float:
    """The adapter's read path: per datagram, recvfrom, framing and the send to the client
    (the best round of `ROUND` datagrams)."""
    readable = service._readable
    holder = service._relays[next(iter(service._relays))]
    address = relay.getsockname()
    payload = bytes(100)
    best = float("inf")
    for _ in range(max(1, n // ROUND)):
        for _ in range(ROUND):
            talker.sendto(payload, address)
        start = time.perf_counter()
        for _ in range(ROUND // 64 + 1):
            readable(relay, holder)
        best = min(best, time.perf_counter() - start)
    return best / ROUND * 1e6


async def profile(args: argparse.Namespace) -> None:
    sink, client_sink = loopback_socket(), loopback_socket()
    peer = sink.getsockname()
    client_address = client_sink.getsockname()
    udp = UdpRegistry()
    config = TurnConfig(
        realm=REALM,
        relay_ips=("127.0.0.1",),
        policy=PeerPolicy.build(["127.0.0.0/8"], ["127.0.0.1"]),
        bandwidth=0,
    )
    service = TurnService(
        config, Credentials.build(REALM, [User(USER, password=PASSWORD)], None), udp
    )
    endpoint = await udp.open(LOCAL, service.front(lambda *_: None))
    local = endpoint.local
    client = ("udp", client_address, local)
    core = service.core
    now = asyncio.get_running_loop().time()
    allocate = MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST)
    allocate.add(AttributeType.REQUESTED_TRANSPORT, encode_byte(17))
    core.handle_stun(allocate.encode(), client, now)
    challenge = parse(core.pop_actions()[0].data)  # type: ignore[union-attr]
    nonce = challenge.nonce or ""
    service.handle(signed(allocate, nonce), client_address, local, Transport.UDP, now)
    bind = MessageBuilder(Method.CHANNEL_BIND, MessageClass.REQUEST)
    bind.add_port(AttributeType.CHANNEL_NUMBER, 0x4000)
    bind.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
    service.handle(signed(bind, nonce), client_address, local, Transport.UDP, now)
    alloc = core.allocation(client)
    assert alloc is not None, "the allocation failed"
    assert alloc.channels, "the channel binding failed"
    payload = bytes(args.length)
    channel_data = encode_channel_data(0x4000, payload)
    n = args.packets
    handler = service.front(lambda *_: None)

    def client_to_peer() -> None:
        handler(channel_data, client_address, local, Transport.UDP, now)

    stages = {
        "core, client->peer (ChannelData)": per_call_us(
            lambda: core.channel_data(channel_data, client, now), n
        ),
        "core, peer->client (ChannelData)": per_call_us(
            lambda: core.peer_data(alloc, payload, peer, now), n
        ),
        "adapter, client->peer + sendto": per_call_us(client_to_peer, n),
        "adapter, peer->client recv + sendto": drain_us(service, alloc.handles[4], sink, n),
    }
    for stage, micros in stages.items():
        print(f"{stage:36} {micros:6.2f} µs")
    if args.cprofile:
        run = cProfile.Profile()
        run.enable()
        for _ in range(n):
            client_to_peer()
        drain_us(service, alloc.handles[4], sink, n)
        run.disable()
        pstats.Stats(run).sort_stats("tottime").print_stats(14)
    await service.stop()
    udp.close()
    sink.close()
    client_sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=100, help="payload bytes")
    parser.add_argument("--cprofile", action="store_true")
    run(profile(parser.parse_args()))  # the loop peerline serve runs on (uvloop)


if __name__ == "__main__":
    main()
