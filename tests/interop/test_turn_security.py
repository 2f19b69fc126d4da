"""`peerline serve`'s TURN with its defaults (no --allow-peer), attacked over the wire.

Every special-purpose peer, in every encoding that leads to it (IPv4-mapped and
-compatible IPv6, NAT64, 6to4, Teredo), is refused with 403 for CreatePermission
and ChannelBind, and a Send indication to it relays nothing; the refusal counters
say why, so an address that slipped past normalisation would show. Unauthenticated
Allocates keep no state; quotas answer 486/508; unauthenticated floods are
rate-limited; garbage leaves the server serving with flat memory.

Only loopback ever receives a packet: the public addresses below (the controls
that show a 403 is the policy, not a broken client) only get permissions and
channels, which send nothing to them.
"""

import asyncio
import contextlib
import ipaddress
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest

from peerline.stun import (
    AttributeType,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    long_term_key,
    parse,
)
from peerline.supernode.stun_service import stun_framer
from peerline.turn.aioclient import AsyncTurnClient, TurnError
from peerline.turn.client import ClientConfig
from tests.interop.test_stun_server import has_ipv6_loopback, rss_kib
from tests.interop.turn_support import PASSWORD, REALM, USER, TurnServer, turn_server
from tests.support.raw_turn import RawTurn, allocate_request, error_code, exchange, udp_socket

pytestmark = pytest.mark.interop

SPECIAL = "peer-special-purpose"
SERVER_ADDRESS = "peer-server-address"
UNSPECIFIED = "peer-unspecified"


def six_to_four(ipv4: str) -> str:
    """The 6to4 address (2002:V4ADDR::/48) of a host behind `ipv4`."""
    return str(
        ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(ipv4)) << 80) | 1)
    )


def teredo(client: str, server: str = "192.0.2.1", port: int = 40000) -> str:
    """The Teredo address (RFC 4380) that leads to `client`, port and address obscured."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (port ^ 0xFFFF) << 32 | (int(ipaddress.IPv4Address(client)) ^ 0xFFFF_FFFF)
    address = ipaddress.IPv6Address(value)
    assert address.teredo is not None
    assert str(address.teredo[1]) == client
    return str(address)


#: IPv4 peers and the refusal each must get (the server listens on 127.0.0.1).
DENIED_V4 = {
    "127.0.0.1": SERVER_ADDRESS,
    "127.0.0.2": SPECIAL,
    "127.255.255.254": SPECIAL,
    "0.0.0.0": UNSPECIFIED,
    "0.0.0.1": SPECIAL,
    "10.0.0.1": SPECIAL,
    "172.16.0.1": SPECIAL,
    "172.31.255.255": SPECIAL,
    "192.168.1.1": SPECIAL,
    "100.64.0.1": SPECIAL,
    "100.127.255.255": SPECIAL,
    "169.254.169.254": SPECIAL,
    "192.0.0.1": SPECIAL,
    "192.0.2.1": SPECIAL,
    "198.18.0.1": SPECIAL,
    "198.51.100.1": SPECIAL,
    "203.0.113.1": SPECIAL,
    "224.0.0.1": SPECIAL,
    "239.255.255.250": SPECIAL,
    "240.0.0.1": SPECIAL,
    "255.255.255.255": SPECIAL,
}
#: IPv6 peers (on an IPv6 allocation; the server also listens on ::1).
DENIED_V6 = {
    "::1": SERVER_ADDRESS,
    "::": UNSPECIFIED,
    "::ffff:127.0.0.1": SERVER_ADDRESS,
    "::ffff:127.0.0.2": SPECIAL,
    "::ffff:10.0.0.1": SPECIAL,
    "::ffff:169.254.169.254": SPECIAL,
    "::ffff:0.0.0.0": UNSPECIFIED,
    "::ffff:100.128.0.1": SPECIAL,  # a mapped address is never a real IPv6 peer
    "::127.0.0.1": SERVER_ADDRESS,  # IPv4-compatible
    "::10.0.0.1": SPECIAL,
    "64:ff9b::7f00:1": SERVER_ADDRESS,  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1": SPECIAL,
    "64:ff9b::a9fe:a9fe": SPECIAL,
    "64:ff9b:1::a00:1": SPECIAL,  # local-use NAT64
    six_to_four("127.0.0.1"): SERVER_ADDRESS,
    six_to_four("10.0.0.1"): SPECIAL,
    six_to_four("169.254.169.254"): SPECIAL,
    six_to_four("192.168.1.1"): SPECIAL,
    teredo("127.0.0.1"): SERVER_ADDRESS,
    teredo("10.0.0.1"): SPECIAL,
    teredo("169.254.169.254"): SPECIAL,
    "fe80::1": SPECIAL,
    "fc00::1": SPECIAL,
    "fd00::2": SPECIAL,
    "fec0::1": SPECIAL,
    "ff02::1": SPECIAL,
    "2001:db8::1": SPECIAL,
    "100::1": SPECIAL,
}
#: Public addresses just outside denied ranges: permitted (nothing is ever sent to them).
PERMITTED_V4 = ("100.128.0.1", "172.32.0.1", "192.169.0.1", "11.0.0.1")
PERMITTED_V6 = ("2a01::1", "2001:200::1")


@pytest.fixture(scope="module")
def ipv6() -> bool:
    return has_ipv6_loopback()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ipv6: bool) -> Iterator[TurnServer]:
    listen = ["--listen", "::1"] if ipv6 else []
    tmp = tmp_path_factory.mktemp("serve")
    with turn_server(tmp, *listen, allow_loopback=False, rate_limits=True) as running:
        yield running


@contextlib.asynccontextmanager
async def allocation(
    server: TurnServer, *, user: str = USER, password: str = PASSWORD
) -> AsyncIterator[AsyncTurnClient]:
    """An allocation by peerline's own client (UDP, IPv4)."""
    config = ClientConfig(server=("127.0.0.1", server.port), username=user, password=password)
    client = AsyncTurnClient(config)
    try:
        await client.allocate(timeout=10)
        yield client
    finally:
        await client.close()


@contextlib.contextmanager
def raw_allocation(server: TurnServer, family: int, source_ip: str) -> Iterator[RawTurn]:
    """An allocation by hand (exact peer encodings), from `source_ip`, given back after."""
    if family == 6 and not has_ipv6_loopback():
        pytest.skip("needs IPv6 on loopback (::1) for an IPv6 relay")
    client = RawTurn(("127.0.0.1", server.port), source_ip, USER, PASSWORD)
    try:
        client.allocate(family)
        yield client
        client.deallocate()
    finally:
        client.close()


def deltas(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, float]:
    """How much each figure starting with `prefix` grew."""
    return {
        name: after[name] - before.get(name, 0.0)
        for name in after
        if name.startswith(prefix) and after[name] != before.get(name, 0.0)
    }


def refusal_counts(expected: dict[str, str]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for reason in expected.values():
        name = f'peerline_turn_refusals_total{{reason="{reason}"}}'
        counts[name] = counts.get(name, 0.0) + 1
    return counts


async def refused_code(request: Awaitable[object]) -> int | None:
    """The error code the server refused `request` with, or None if it succeeded."""
    try:
        await request
    except TurnError as error:
        return error.code
    return None


FAMILIES = {4: (DENIED_V4, PERMITTED_V4), 6: (DENIED_V6, PERMITTED_V6)}


@pytest.mark.parametrize("family", [4, 6])
def test_create_permission_is_403_for_every_special_peer(server: TurnServer, family: int) -> None:
    expected, permitted = FAMILIES[family]
    with raw_allocation(server, family, "127.0.0.1") as client:
        before = server.metrics()
        codes = {ip: client.create_permission(ip) for ip in expected}
        assert codes == dict.fromkeys(expected, 403)
        after = server.metrics()
        assert deltas(before, after, "peerline_turn_refusals_total") == refusal_counts(expected)
        assert after["peerline_turn_permissions"] == before["peerline_turn_permissions"]
        # The controls: the same request for a public peer succeeds (and sends nothing).
        assert {ip: client.create_permission(ip) for ip in permitted} == dict.fromkeys(permitted)
        grown = server.metrics()["peerline_turn_permissions"] - before["peerline_turn_permissions"]
        assert grown == len(permitted)


@pytest.mark.parametrize("family", [4, 6])
def test_channel_bind_is_403_for_every_special_peer(server: TurnServer, family: int) -> None:
    expected, permitted = FAMILIES[family]
    with raw_allocation(server, family, "127.0.0.1") as client:
        before = server.metrics()
        codes = {
            ip: client.channel_bind(0x4000 + index, ip, 5060) for index, ip in enumerate(expected)
        }
        assert codes == dict.fromkeys(expected, 403)
        after = server.metrics()
        assert deltas(before, after, "peerline_turn_refusals_total") == refusal_counts(expected)
        for gauge in ("peerline_turn_channels", "peerline_turn_permissions"):
            assert after[gauge] == before[gauge]
        assert client.channel_bind(0x4FFF, permitted[0], 5060) is None  # the control
        assert server.metrics()["peerline_turn_channels"] == before["peerline_turn_channels"] + 1


def test_a_relay_of_one_family_does_not_reach_the_other(server: TurnServer) -> None:
    with raw_allocation(server, 4, "127.0.0.1") as client:
        for ip in ("::ffff:127.0.0.1", "64:ff9b::7f00:1", "::1", "2a01::1"):
            assert client.create_permission(ip) == 443, ip
    with raw_allocation(server, 6, "127.0.0.1") as client:
        for ip in ("127.0.0.1", "100.128.0.1"):
            assert client.create_permission(ip) == 443, ip


class Listener(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)


async def test_send_indications_to_loopback_relay_nothing(server: TurnServer) -> None:
    """Real listeners on loopback; Send indications aimed at them in every encoding.
    Nothing arrives, and the server counts each as dropped for want of a permission."""
    loop = asyncio.get_running_loop()
    ipv6 = has_ipv6_loopback()
    listeners = []
    targets: list[tuple[int, str, int]] = []  # (relay family, peer as written, port)
    for family, host, aliases in (
        (4, "127.0.0.1", ["127.0.0.1", "0.0.0.0"]),
        (4, "127.0.0.2", ["127.0.0.2"]),
        (6, "::1", ["::1", "::", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "::127.0.0.1"]),
    ):
        if family == 6 and not ipv6:
            continue
        transport, protocol = await loop.create_datagram_endpoint(Listener, local_addr=(host, 0))
        listeners.append((transport, protocol))
        port = transport.get_extra_info("sockname")[1]
        targets += [(family, alias, port) for alias in aliases]
    try:
        before = server.metrics()
        for family in (4, 6) if ipv6 else (4,):
            with raw_allocation(server, family, "127.0.0.1") as client:
                for wanted, peer, port in targets:
                    if wanted == family:
                        client.send_indication(peer, port, b"let me in")
                await asyncio.sleep(1.0)  # what would arrive has arrived by now
        assert [protocol.received for _, protocol in listeners] == [[] for _ in listeners]
        dropped = 'peerline_turn_dropped_total{reason="no-permission"}'
        assert server.metrics()[dropped] - before.get(dropped, 0.0) == len(targets)
    finally:
        for transport, _ in listeners:
            transport.close()


# -- raw STUN: what an attacker sends -------------------------------------------------


def udp_from(source_ip: str, server: TurnServer) -> socket.socket:
    return udp_socket(("127.0.0.1", server.port), source_ip)


STATE = (
    "peerline_turn_allocations",
    "peerline_turn_permissions",
    "peerline_turn_channels",
    'peerline_turn_allocation_events_total{event="created"}',
)


def test_unauthenticated_allocates_keep_no_state(server: TurnServer) -> None:
    before = server.metrics()
    rss_before = rss_kib(server.process.pid)
    sources = [f"127.2.{i // 200}.{i % 200 + 1}" for i in range(400)]
    answered = 0
    for index, source in enumerate(sources):  # 400 sources x 10: each within its budget
        with udp_from(source, server) as sock:
            for attempt in range(10):
                if attempt % 2:  # a nonce it made, but a wrong password
                    nonce = exchange(sock, allocate_request().encode()).nonce or ""
                    wrong = long_term_key(USER, REALM, f"guess {index}")
                    request = allocate_request(username=USER, realm=REALM, nonce=nonce)
                    answer = exchange(sock, request.encode(integrity_key=wrong))
                else:
                    answer = exchange(sock, allocate_request().encode())
                assert answer.error_code is not None
                assert answer.error_code.code == 401
                answered += 1
    after = server.metrics()
    assert answered == 4000
    assert {name: after[name] for name in STATE} == {name: before[name] for name in STATE}
    assert after["peerline_turn_requests_total"] - before["peerline_turn_requests_total"] == 6000
    grown = rss_kib(server.process.pid) - rss_before
    assert grown < 2048, f"RSS grew by {grown} KiB over 6000 unauthenticated requests"


def test_forged_and_foreign_nonces_are_438(server: TurnServer) -> None:
    before = server.metrics()
    key = long_term_key(USER, REALM, PASSWORD)
    with udp_from("127.0.0.3", server) as sock, udp_from("127.0.0.4", server) as other:
        forged = allocate_request(username=USER, realm=REALM, nonce="made-up-nonce")
        answer = exchange(sock, forged.encode(integrity_key=key))
        assert answer.error_code is not None
        assert answer.error_code.code == 438
        theirs = exchange(other, allocate_request().encode()).nonce or ""  # bound to 127.0.0.4
        stolen = allocate_request(username=USER, realm=REALM, nonce=theirs)
        answer = exchange(sock, stolen.encode(integrity_key=key))
        assert answer.error_code is not None
        assert answer.error_code.code == 438
    after = server.metrics()
    assert {name: after[name] for name in STATE} == {name: before[name] for name in STATE}


def test_unauthenticated_requests_are_rate_limited_per_source(server: TurnServer) -> None:
    before = server.metrics()
    flood = 300
    with udp_from("127.0.0.99", server) as sock:
        for _ in range(flood):
            sock.send(allocate_request().encode())
        answered = 0
        with contextlib.suppress(TimeoutError):
            sock.settimeout(1.0)
            while answered < flood:
                sock.recv(4096)
                answered += 1
    dropped = 'peerline_turn_dropped_total{reason="rate-limited"}'
    limited = server.metrics()[dropped] - before.get(dropped, 0.0)
    assert 0 < answered < flood
    assert answered + limited == flood
    with udp_from("127.0.0.98", server) as sock:  # another source is still answered
        assert exchange(sock, allocate_request().encode()).error_code is not None


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[TurnServer]:
    quotas = ["--turn-user-quota", "2", "--turn-max-allocations", "3", "--user", "bob:builder"]
    with turn_server(tmp_path, *quotas, allow_loopback=False) as running:
        yield running


async def test_user_and_total_quotas_hold(small_server: TurnServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(allocation(small_server))
        with pytest.raises(TurnError) as over_user:
            await stack.enter_async_context(allocation(small_server))
        assert over_user.value.code == 486
        bob = await stack.enter_async_context(
            allocation(small_server, user="bob", password="builder")
        )
        with pytest.raises(TurnError) as over_total:
            await stack.enter_async_context(
                allocation(small_server, user="bob", password="builder")
            )
        assert over_total.value.code == 508
        figures = small_server.metrics()
        assert figures["peerline_turn_allocations"] == 3
        assert figures['peerline_turn_refusals_total{reason="user-quota"}'] == 1
        assert figures['peerline_turn_refusals_total{reason="server-quota"}'] == 1
        await bob.close()  # room again, for bob as for anyone
        async with allocation(small_server, user="bob", password="builder"):
            assert small_server.metrics()["peerline_turn_allocations"] == 3


# -- garbage ----------------------------------------------------------------------------


def turn_garbage(rng: random.Random) -> list[bytes]:
    """Hostile datagrams for a TURN port: random bytes, lying ChannelData, TURN methods
    with random and lying attributes, mangled Allocates, Send indications to loopback."""
    pool = [rng.randbytes(rng.randrange(0, 600)) for _ in range(300)]
    for _ in range(300):  # ChannelData: any channel, any length field, any body
        body = rng.randbytes(rng.randrange(0, 300))
        head = bytes((rng.randrange(0x40, 0x80), rng.randrange(256)))
        pool.append(head + rng.randrange(0, 65536).to_bytes(2, "big") + body)
    methods = [int(m) for m in Method if m is not Method.BINDING]
    types = [int(t) for t in AttributeType]
    for _ in range(400):
        builder = MessageBuilder(rng.choice(methods), rng.choice(list(MessageClass)))
        for _ in range(rng.randrange(0, 6)):
            builder.add(rng.choice(types), rng.randbytes(rng.randrange(0, 40)))
        data = bytearray(builder.encode(fingerprint=rng.random() < 0.5))
        if rng.random() < 0.3:
            data[2:4] = rng.randrange(0, 65536).to_bytes(2, "big")  # a lying length
        pool.append(bytes(data))
    valid = allocate_request(username=USER, realm=REALM, nonce="x" * 40).encode(
        integrity_key=b"k" * 16, fingerprint=True
    )
    for _ in range(200):
        mangled = bytearray(valid[: rng.randrange(0, len(valid) + 1)])
        if len(mangled) > 20:
            mangled[rng.randrange(20, len(mangled))] ^= 0xFF
        pool.append(bytes(mangled))
    for _ in range(100):
        send = MessageBuilder(Method.SEND, MessageClass.INDICATION)
        send.add_xor_address(AttributeType.XOR_PEER_ADDRESS, ("127.0.0.1", rng.randrange(1, 65536)))
        pool.append(send.add(AttributeType.DATA, rng.randbytes(rng.randrange(0, 200))).encode())
    return pool


def flood(sock: socket.socket, pool: list[bytes], count: int) -> int:
    sent, deadline = 0, time.monotonic() + 60
    while sent < count and time.monotonic() < deadline:
        try:
            sock.send(pool[sent % len(pool)])
            sent += 1
        except BlockingIOError:
            time.sleep(0.0005)
        except ConnectionRefusedError:
            pass  # an ICMP error from an earlier datagram: go on
    return sent


async def test_garbage_keeps_it_serving_with_flat_memory(server: TurnServer) -> None:
    pool = turn_garbage(random.Random(8656))
    # Garbage from a client with an allocation reaches the relay paths, too.
    with (
        udp_from("127.0.0.77", server) as stranger,
        raw_allocation(server, 4, "127.0.0.78") as owner,
    ):
        socks = (stranger, owner.sock)
        for sock in socks:
            sock.setblocking(False)
        for sock in socks:  # warm up: let the allocator settle
            flood(sock, pool, len(pool) * 5)
        await asyncio.sleep(0.5)
        before = rss_kib(server.process.pid)
        sent = [flood(sock, pool, 100_000) for sock in socks]
        await asyncio.sleep(1.0)
        while True:  # what the server answered the garbage, before the deallocation
            try:
                owner.sock.recv(65536)
            except BlockingIOError:
                break
        owner.sock.settimeout(2)
    assert sent == [100_000, 100_000]
    assert server.process.poll() is None
    grown = rss_kib(server.process.pid) - before
    assert grown < 4096, f"RSS grew by {grown} KiB over 200,000 garbage datagrams"
    async with allocation(server) as client:  # still serving, and still refusing
        assert client.allocation is not None
        assert await refused_code(client.create_permission("127.0.0.1")) == 403


def read_messages(stream: socket.socket, count: int) -> list[Message]:
    """The next `count` STUN messages on a stream."""
    data = bytearray()
    messages: list[Message] = []
    while len(messages) < count:
        size = stun_framer(data)
        if size > 0:
            messages.append(parse(bytes(data[:size])))
            del data[:size]
            continue
        chunk = stream.recv(4096)
        assert chunk, f"closed after {len(messages)} messages"
        data += chunk
    return messages


def test_garbage_streams(server: TurnServer) -> None:
    """Bytes that cannot start a STUN or ChannelData frame get the connection closed;
    well-framed junk is dropped and the stream goes on."""
    for junk in (b"\xff" * 3000, b"\x00\x03\x00\x05" + bytes(40)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stream:
            stream.sendall(junk)
            assert stream.recv(100) == b""
    rng = random.Random(6062)
    framed = [
        b"\x40\x00\x00\xc8" + rng.randbytes(200),  # ChannelData, no allocation
        b"\x7f\xff\x00\x03abc\x00",  # padded to 4 bytes, as on every stream
        MessageBuilder(Method.REFRESH, MessageClass.REQUEST).add(0x7777, b"?").encode(),
        MessageBuilder(Method.SEND, MessageClass.INDICATION).add(0x0013, b"x").encode(),
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stream:
        for junk in framed:
            stream.sendall(junk)
        stream.sendall(allocate_request().encode())
        stream.sendall(MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode())
        refresh, allocate, binding = read_messages(stream, 3)  # answered in order
        assert error_code(refresh) == 401
        assert error_code(allocate) == 401
        assert binding.xor_mapped_address == stream.getsockname()


def test_no_traceback_in_the_servers_log(server: TurnServer) -> None:
    assert "Traceback" not in server.log.read_text()
    assert server.process.poll() is None


def test_metrics_are_valid_prometheus_text(server: TurnServer) -> None:
    """Each metric's HELP and TYPE come once, before its samples, which stay together
    (a scraper rejects a family that is split)."""
    families: list[str] = []
    typed: set[str] = set()
    for line in server.metrics_text().splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in typed, f"second TYPE for {name}"
            typed.add(name)
        elif line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            assert name in typed, f"{name} sampled before its TYPE"
            if not families or families[-1] != name:
                assert name not in families, f"the samples of {name} are split"
                families.append(name)
    assert "peerline_turn_relayed_bytes_total" in families
