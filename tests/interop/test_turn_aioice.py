"""aioice's TURN client (the one aiortc uses) against `peerline serve`: it obtains a
relayed candidate and relays data both ways to a UDP peer on loopback over UDP, TCP
and TLS; two aioice ICE agents restricted to relay candidates connect through it."""

import asyncio
import ssl
from collections.abc import Iterator

import pytest

from tests.interop.turn_support import PASSWORD, USER, TurnServer, turn_server

aioice = pytest.importorskip("aioice", reason="needs the PyPI package aioice (dev extra)")
from aioice import Candidate, Connection, TransportPolicy  # noqa: E402
from aioice.stun import TransactionFailed  # noqa: E402
from aioice.turn import create_turn_endpoint  # noqa: E402

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    with turn_server(tmp_path_factory.mktemp("serve")) as running:
        yield running


class Inbox(asyncio.DatagramProtocol):
    """Datagrams as they arrive, (data, source), for either end of the relay."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    async def take(self, count: int) -> list[tuple[bytes, tuple[str, int]]]:
        async with asyncio.timeout(5):
            return [await self.queue.get() for _ in range(count)]


def insecure_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    return context


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_relayed_candidate_carries_data_both_ways(server: TurnServer, transport: str) -> None:
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
    peer_address = peer_transport.get_extra_info("sockname")[:2]
    port = server.tls_port if transport == "tls" else server.port
    before = server.metrics()
    relay, client = await create_turn_endpoint(
        Inbox,
        server_addr=("127.0.0.1", port),
        username=USER,
        password=PASSWORD,
        ssl=insecure_tls() if transport == "tls" else None,
        transport="udp" if transport == "udp" else "tcp",
    )
    try:
        relayed = relay.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        assert relayed[1] not in (server.port, server.tls_port)
        assert relay.get_extra_info("related_address")[0] == "127.0.0.1"
        for i in range(10):  # aioice binds a channel first, then sends ChannelData
            relay.sendto(b"to peer %d" % i, peer_address)
        arrived = await peer.take(10)
        assert {data for data, _ in arrived} == {b"to peer %d" % i for i in range(10)}
        assert {source for _, source in arrived} == {relayed}  # it came out of the relay
        for i in range(10):
            peer_transport.sendto(b"to client %d" % i, relayed)
        back = await client.take(10)
        assert {data for data, _ in back} == {b"to client %d" % i for i in range(10)}
        assert {source for _, source in back} == {peer_address}
        assert client.errors == []
        after = server.metrics()
        assert after["peerline_turn_allocations"] == before["peerline_turn_allocations"] + 1
        assert after["peerline_turn_channels"] == before["peerline_turn_channels"] + 1
        for direction in ("to_peer", "from_peer"):
            name = f'peerline_turn_relayed_packets_total{{direction="{direction}"}}'
            assert after[name] - before.get(name, 0) == 10
    finally:
        relay.close()
        peer_transport.close()
    async with asyncio.timeout(5):  # aioice deletes the allocation (Refresh 0) on close
        while server.metrics()["peerline_turn_allocations"] != before["peerline_turn_allocations"]:
            await asyncio.sleep(0.05)


async def test_wrong_password_is_refused(server: TurnServer) -> None:
    with pytest.raises(TransactionFailed) as refused:
        await create_turn_endpoint(
            Inbox,
            server_addr=("127.0.0.1", server.port),
            username=USER,
            password="not the password",
        )
    assert refused.value.response.error_code == 401


def relay_agent(server: TurnServer, *, controlling: bool) -> Connection:
    """An aioice agent that gathers only a relayed candidate, from `peerline serve`."""
    return Connection(
        ice_controlling=controlling,
        components=1,
        turn_server=("127.0.0.1", server.port),
        turn_username=USER,
        turn_password=PASSWORD,
        use_ipv6=False,
        transport_policy=TransportPolicy.RELAY,
    )


async def exchange_candidates(one: Connection, other: Connection) -> None:
    for local, remote in ((one, other), (other, one)):
        for candidate in local.local_candidates:
            await remote.add_remote_candidate(candidate)
        await remote.add_remote_candidate(None)
        remote.remote_username = local.local_username
        remote.remote_password = local.local_password


async def test_two_ice_agents_connect_relay_to_relay(server: TurnServer) -> None:
    before = server.metrics()
    alice = relay_agent(server, controlling=True)
    bob = relay_agent(server, controlling=False)
    try:
        await asyncio.gather(alice.gather_candidates(), bob.gather_candidates())
        for agent in (alice, bob):
            kinds: list[Candidate] = agent.local_candidates
            assert [c.type for c in kinds] == ["relay"], kinds
            assert kinds[0].host == "127.0.0.1"
        await exchange_candidates(alice, bob)
        async with asyncio.timeout(15):
            await asyncio.gather(alice.connect(), bob.connect())
        await alice.send(b"hello bob")
        async with asyncio.timeout(5):
            assert await bob.recv() == b"hello bob"
        await bob.send(b"hello alice")
        async with asyncio.timeout(5):
            assert await alice.recv() == b"hello alice"
        figures = server.metrics()
        assert figures["peerline_turn_allocations"] >= 2
        from_peer = 'peerline_turn_relayed_packets_total{direction="from_peer"}'
        assert figures[from_peer] > before.get(from_peer, 0)  # relayed for these agents
    finally:
        await asyncio.gather(alice.close(), bob.close())


def test_server_log_is_quiet(server: TurnServer) -> None:
    """No traceback in the server's log after everything above."""
    assert "Traceback" not in server.log.read_text()
