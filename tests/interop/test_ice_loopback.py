"""Two IceTransports in one event loop on loopback: host candidates, STUN, relays
through `peerline serve` and coturn's turnserver, dead servers, consent, restarts.

Every datagram stays on 127.0.0.1: host sockets are bound on `lo` only.
"""

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from peerline.ice.aio import IceFailed, IceTransport
from peerline.ice.candidate import Candidate, CandidateType
from peerline.ice.config import IceConfig, Role
from peerline.ice.description import BadDescription, IceDescription
from peerline.ice.gather import (
    CandidatePolicy,
    IceTransportConfig,
    StunServer,
    TurnServer,
)
from peerline.ice.sdp import Credentials
from peerline.session.path import PathInfo
from peerline.stun import MessageClass, Transport, parse
from tests.interop import test_turn_client
from tests.interop.turn_support import PASSWORD, USER, turn_server
from tests.interop.turn_support import TurnServer as TurnServerProcess
from tests.support.procs import free_port

pytestmark = pytest.mark.interop

WAIT = 20.0
"""A bound on every wait (never a timed assertion: only so a broken run ends)."""

LOOPBACK = IceTransportConfig(interfaces=("lo",), include_loopback=True, ipv6=False)


@dataclass
class Listener:
    """A PathListener that records what it is told."""

    received: "asyncio.Queue[bytes]" = field(default_factory=asyncio.Queue)
    changes: list[PathInfo] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    lost_event: asyncio.Event = field(default_factory=asyncio.Event)

    def datagram_received(self, data: bytes) -> None:
        self.received.put_nowait(data)

    def path_changed(self, info: PathInfo) -> None:
        self.changes.append(info)

    def path_lost(self, reason: str) -> None:
        self.lost.append(reason)
        self.lost_event.set()


@dataclass
class Peer:
    ice: IceTransport
    listener: Listener


@contextlib.asynccontextmanager
async def two_peers(
    config_a: IceTransportConfig, config_b: IceTransportConfig | None = None
) -> AsyncIterator[tuple[Peer, Peer]]:
    """An offerer (controlling) and an answerer, started, always closed."""
    peers = []
    for config, role in ((config_a, Role.CONTROLLING), (config_b or config_a, Role.CONTROLLED)):
        listener = Listener()
        peers.append(Peer(IceTransport(config, role=role, listener=listener), listener))
    try:
        for peer in peers:
            await peer.ice.start()
        yield peers[0], peers[1]
    finally:
        for peer in peers:
            await peer.ice.close()


async def exchange(a: Peer, b: Peer) -> None:
    """Offer/answer with every candidate: wait for gathering, then swap descriptions."""
    await a.ice.gathered(WAIT)
    await b.ice.gathered(WAIT)
    b.ice.set_remote_description(a.ice.local_description())
    a.ice.set_remote_description(b.ice.local_description())


async def connect(a: Peer, b: Peer) -> tuple[PathInfo, PathInfo]:
    await exchange(a, b)
    return await a.ice.connected(WAIT), await b.ice.connected(WAIT)


async def ping_pong(a: Peer, b: Peer, count: int = 20) -> None:
    """Datagrams both ways; every one must arrive (loopback does not lose them)."""
    for i in range(count):
        a.ice.send(b"a->b %d" % i)
        b.ice.send(b"b->a %d" % i)
    async with asyncio.timeout(WAIT):
        got_b = {await b.listener.received.get() for _ in range(count)}
        got_a = {await a.listener.received.get() for _ in range(count)}
    assert got_b == {b"a->b %d" % i for i in range(count)}
    assert got_a == {b"b->a %d" % i for i in range(count)}


async def test_host_candidates_connect_and_carry_datagrams_both_ways() -> None:
    async with two_peers(LOOPBACK) as (a, b):
        info_a, info_b = await connect(a, b)
        assert (info_a.local_type, info_a.remote_type) == ("host", "host")
        assert info_a.local_address == info_b.remote_address
        assert info_b.local_address == info_a.remote_address
        assert not info_a.relayed
        assert a.ice.describe() == info_a
        await ping_pong(a, b)
        assert a.listener.changes[0] == info_a
        assert b.listener.changes[0] == info_b
    assert asyncio.all_tasks() == {asyncio.current_task()}  # close() left no task behind


async def test_ipv4_and_ipv6_host_candidates_in_a_port_range() -> None:
    config = IceTransportConfig(
        interfaces=("lo",), include_loopback=True, ipv6=True, port_range=(41000, 41099)
    )
    async with two_peers(config) as (a, b):
        await a.ice.gathered(WAIT)
        hosts = a.ice.local_candidates
        if not any(":" in c.address.ip for c in hosts):
            pytest.skip("this machine has no ::1")
        assert {":" in c.address.ip for c in hosts} == {True, False}
        assert all(41000 <= c.address.port <= 41099 for c in hosts)
        info, _ = await connect(a, b)
        assert info.local_address.startswith("[::1]:")  # RFC 8421: IPv6 first
        await ping_pong(a, b)


async def test_no_working_pair_fails_connected() -> None:
    """A peer whose only candidate is a closed port: checks fail, then ICE does."""
    quick = IceConfig(check_rto=0.05, check_rc=2, check_rm=2)
    config = IceTransportConfig(addresses=("127.0.0.1",), ice=quick)
    nobody = Candidate.host(("127.0.0.1", free_port()))
    peer = IceDescription(
        credentials=Credentials.generate(), candidates=(nobody,), end_of_candidates=True
    )
    listener = Listener()
    async with IceTransport(config, role=Role.CONTROLLING, listener=listener) as ice:
        await ice.gathered(WAIT)
        ice.set_remote_description(peer.to_text())
        with pytest.raises(IceFailed, match="no working pair"):
            await ice.connected(WAIT)
        assert listener.lost[0].startswith("ICE failed")
        assert ice.describe() is None


async def test_trickled_candidates_connect() -> None:
    """Credentials first, then each candidate as it is found, then end-of-candidates."""
    async with contextlib.AsyncExitStack() as stack:
        listeners = (Listener(), Listener())
        peers: list[IceTransport] = []

        def forward(index: int) -> Callable[[Candidate | None], None]:
            def on_candidate(candidate: Candidate | None) -> None:
                other = peers[1 - index]
                if candidate is None:
                    other.end_of_remote_candidates()
                else:
                    other.add_remote_candidate(candidate)

            return on_candidate

        for index, role in enumerate((Role.CONTROLLING, Role.CONTROLLED)):
            ice = IceTransport(
                LOOPBACK,
                role=role,
                listener=listeners[index],
                on_candidate=forward(index),
            )
            peers.append(ice)
            stack.push_async_callback(ice.close)
        a, b = peers
        credentials_only = "\n".join(
            line for line in a.local_description().splitlines() if "candidate" not in line
        )
        b.set_remote_description(credentials_only)
        a.set_remote_description(
            "\n".join(line for line in b.local_description().splitlines() if "cand" not in line)
        )
        await a.start()
        await b.start()
        info = await a.connected(WAIT)
        assert info.local_type == "host"
        await b.connected(WAIT)
        await ping_pong(Peer(a, listeners[0]), Peer(b, listeners[1]))


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServerProcess]:
    """`peerline serve` on 127.0.0.1: STUN, and TURN relaying to loopback peers."""
    with turn_server(tmp_path_factory.mktemp("serve")) as server:
        yield server


coturn = test_turn_client.coturn
"""coturn's turnserver on 127.0.0.1, relaying to loopback peers (the TURN client tests' own)."""


def relay_only(port: int, transport: Transport = Transport.UDP) -> IceTransportConfig:
    server = TurnServer(
        host="127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        transport=transport,
        verify_tls=False,  # the server's self-signed certificate
    )
    return IceTransportConfig(
        addresses=("127.0.0.1",), turn_servers=(server,), policy=CandidatePolicy.RELAY
    )


async def connect_relayed(
    config: IceTransportConfig, server: TurnServerProcess | None = None
) -> None:
    """Relay-only on both sides; with `server`, its figures show the two allocations,
    a channel for each side's selected pair, and that close() gave them back."""
    async with two_peers(config) as (a, b):
        for peer in (a, b):
            await peer.ice.gathered(WAIT)
            types = {c.type for c in peer.ice.local_candidates}
            assert types == {CandidateType.RELAYED}, peer.ice.server_failures
        info_a, info_b = await connect(a, b)
        for info in (info_a, info_b):
            assert (info.local_type, info.remote_type) == ("relay", "relay")
            assert info.relayed
        assert info_a.local_address == info_b.remote_address
        await ping_pong(a, b)
        if server is not None:
            figures = server.metrics()
            assert figures["peerline_turn_allocations"] == 2
            assert figures["peerline_turn_channels"] == 2
    assert asyncio.all_tasks() == {asyncio.current_task()}
    if server is not None:
        assert server.metrics()["peerline_turn_allocations"] == 0


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP, Transport.TLS])
async def test_relay_only_through_peerline_serve(
    serve: TurnServerProcess, transport: Transport
) -> None:
    port = serve.tls_port if transport is Transport.TLS else serve.port
    await connect_relayed(relay_only(port, transport), serve)


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_relay_only_through_coturn(coturn: int, transport: Transport) -> None:
    await connect_relayed(relay_only(coturn, transport))


async def test_stun_server_answers_and_no_redundant_srflx_is_signalled(
    serve: TurnServerProcess,
) -> None:
    """On loopback the server sees each socket's own address: RFC 8445 §5.1.3 drops
    that srflx as redundant. The answer must come (no failure), and a relay from
    the same server still adds a relay candidate."""
    config = IceTransportConfig(
        addresses=("127.0.0.1",),
        stun_servers=(StunServer(host="127.0.0.1", port=serve.port),),
        turn_servers=relay_only(serve.port).turn_servers,
    )
    async with two_peers(config) as (a, b):
        await a.ice.gathered(WAIT)
        assert a.ice.server_failures == []
        types = sorted(c.type.value for c in a.ice.local_candidates)
        assert types == ["host", "relay"]
        info, _ = await connect(a, b)
        assert info.local_type == "host"  # the direct path wins over the relay
        await ping_pong(a, b)


async def test_dead_stun_and_turn_servers_cost_only_their_timeout() -> None:
    dead = free_port()
    config = IceTransportConfig(
        addresses=("127.0.0.1",),
        stun_servers=(StunServer(host="127.0.0.1", port=dead),),
        turn_servers=(
            TurnServer(host="127.0.0.1", port=dead, username=USER, password=PASSWORD),
            TurnServer(
                host="127.0.0.1",
                port=dead,
                username=USER,
                password=PASSWORD,
                transport=Transport.TCP,
            ),
        ),
        stun_timeout=0.5,
        turn_timeout=0.5,
    )
    async with two_peers(config) as (a, b):
        info, _ = await connect(a, b)
        assert info.local_type == "host"
        failures = a.ice.server_failures
        assert len(failures) == 3, failures
        assert any(f.startswith("stun:") for f in failures)
        assert any("transport=tcp" in f for f in failures)
        await ping_pong(a, b)


async def test_consent_loss_is_reported_when_the_peer_vanishes() -> None:
    fast = IceConfig(consent_interval=0.2, consent_timeout=1.0)
    config = IceTransportConfig(interfaces=("lo",), include_loopback=True, ipv6=False, ice=fast)
    async with two_peers(config) as (a, b):
        await connect(a, b)
        await ping_pong(a, b, count=3)
        await b.ice.close()  # abruptly, as far as ICE can tell: no goodbye exists
        async with asyncio.timeout(WAIT):
            await a.listener.lost_event.wait()
        assert "consent lost" in a.listener.lost[0]
        assert a.ice.describe() is None
        a.ice.send(b"into the void")  # dropped quietly, as UDP would


async def test_ice_restart_keeps_carrying_data() -> None:
    async with two_peers(LOOPBACK) as (a, b):
        await connect(a, b)
        old_ufrag = a.ice.local_description().splitlines()[0]
        offer = a.ice.restart()
        assert offer.splitlines()[0] != old_ufrag
        b.ice.set_remote_description(offer)  # b restarts too: new credentials back
        a.ice.set_remote_description(b.ice.local_description())
        async with asyncio.timeout(WAIT):
            while len(a.listener.changes) < 2 or len(b.listener.changes) < 2:
                await asyncio.sleep(0.05)
        await ping_pong(a, b)


async def test_bad_remote_description_is_one_clear_error() -> None:
    async with two_peers(LOOPBACK) as (a, _):
        with pytest.raises(BadDescription, match="line 2"):
            a.ice.set_remote_description("a=ice-ufrag:abcd\na=candidate:garbage\n")


async def test_garbage_from_a_stranger_is_dropped_and_the_path_goes_on() -> None:
    """Random bytes, fake ChannelData, STUN-looking junk and QUIC-looking bytes from an
    address ICE never learned reach neither the agent's state nor the listener."""
    rng = random.Random(4)
    async with two_peers(LOOPBACK) as (a, b):
        await connect(a, b)
        target = a.ice.local_candidates[0].address
        junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(300)]
        junk += [b"\x40\x00\x00\x04abcd", b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)]
        junk += [b"\x41" + bytes(40)] * 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            for index, data in enumerate(junk):
                stranger.sendto(data, target)
                if index % 20 == 19:  # let it be read: a full socket buffer drops anything
                    await asyncio.sleep(0.01)
        await ping_pong(a, b)
        assert a.listener.received.empty()  # none of the junk was delivered
        assert a.ice.describe() is not None


async def test_bindings_are_refreshed_toward_the_stun_server_while_waiting() -> None:
    """While a person pastes the answer back, an indication (asking for no answer)
    goes from the host socket to the STUN server, so the NAT keeps the binding the
    offer's server-reflexive candidate names."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    config = IceTransportConfig(
        addresses=("127.0.0.1",),
        stun_servers=(StunServer(host="127.0.0.1", port=port),),
        stun_timeout=0.5,
    )
    loop = asyncio.get_running_loop()
    try:
        async with IceTransport(config, role=Role.CONTROLLING) as ice:
            request, host = await asyncio.wait_for(loop.sock_recvfrom(server, 2048), WAIT)
            assert parse(request).message_class is MessageClass.REQUEST  # gathering
            await ice.gathered(WAIT)
            ice.refresh_bindings()
            data, source = await asyncio.wait_for(loop.sock_recvfrom(server, 2048), WAIT)
            while parse(data).message_class is MessageClass.REQUEST:  # a retransmission
                data, source = await asyncio.wait_for(loop.sock_recvfrom(server, 2048), WAIT)
            assert parse(data).message_class is MessageClass.INDICATION
            assert source == host
    finally:
        server.close()
