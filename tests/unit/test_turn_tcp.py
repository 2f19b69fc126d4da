"""RFC 6062 TCP relays in the TURN server core, with a fake clock: TCP Allocate,
Connect (client-initiated), ConnectionAttempt (peer-initiated), ConnectionBind, the
446/447 errors, the 30 s timers, the peer policy, and what closing either side does."""

import pytest

from peerline.stun import AttributeType, Message, MessageBuilder, MessageClass, Method, parse
from peerline.turn.allocation import BindData, ClientKey, ClosePeer
from peerline.turn.tcp_relay import BIND_TIMEOUT, CONNECT_TIMEOUT, MAX_CONNECTIONS, TCP_PROTOCOL
from tests.unit.turn_harness import (
    CLIENT,
    PEER,
    SERVER,
    Client,
    Harness,
    code_of,
    make_server,
)

CONTROL = ("tcp", CLIENT, SERVER)
DATA = ("tcp", ("192.0.2.10", 50001), SERVER)
PEER_ALLOWED = ("192.0.2.0/24",)


def tcp_allocated() -> Client:
    harness = make_server(allow=PEER_ALLOWED)
    client = Client(harness, client=CONTROL)
    answer = client.allocate(TCP_PROTOCOL)
    assert code_of(answer) is None
    return client


def connect(client: Client, peer: tuple[str, int] = PEER) -> Message | None:
    """Send Connect; the answer if one came at once (an error), else None."""
    builder = MessageBuilder(Method.CONNECT, MessageClass.REQUEST)
    builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
    return client.harness.request(client.signed(builder), client.client)


def last_answer(harness: Harness) -> Message:
    harness.pump()
    return parse(harness.sent[-1].data)


def connection_bind(client: Client, connection_id: int, data: ClientKey = DATA) -> Message:
    data_client = Client(client.harness, client.username, client=data)
    data_client.nonce = client.nonce
    builder = MessageBuilder(Method.CONNECTION_BIND, MessageClass.REQUEST)
    builder.add_u32(AttributeType.CONNECTION_ID, connection_id)
    return data_client.send(builder)


def connected(client: Client, peer: tuple[str, int] = PEER) -> int:
    """Connect, the adapter reports the peer connected: the CONNECTION-ID answered."""
    assert connect(client, peer) is None
    harness = client.harness
    assert harness.server.tcp.peer_connected(harness.connects[-1].connection, harness.now)
    answer = last_answer(harness)
    assert code_of(answer) is None
    value = answer.get(AttributeType.CONNECTION_ID)
    assert value is not None
    assert int.from_bytes(value) == harness.connects[-1].connection
    return int.from_bytes(value)


def permit(client: Client, peer: tuple[str, int] = PEER) -> None:
    assert code_of(client.permission(peer)) is None


# -- Allocate ------------------------------------------------------------------------


def test_tcp_allocate_over_tcp_gets_a_relayed_address() -> None:
    client = tcp_allocated()
    alloc = client.harness.server.allocation(CONTROL)
    assert alloc is not None
    assert alloc.tcp
    assert alloc.relays[4][0] == "198.51.100.1"


@pytest.mark.parametrize(
    ("name", "value"),
    [("dont_fragment", b""), ("even_port", b"\x00"), ("reservation_token", b"12345678")],
)
def test_tcp_allocate_refuses_udp_only_attributes(name: str, value: bytes) -> None:
    harness = make_server()
    client = Client(harness, client=CONTROL)
    answer = client.allocate(6, **{name: value})
    assert code_of(answer) == 400
    assert harness.server.allocation_count == 0


def test_channel_bind_and_send_are_refused_on_a_tcp_allocation() -> None:
    client = tcp_allocated()
    assert code_of(client.bind(0x4000, PEER)) == 400
    permit(client)
    send = MessageBuilder(Method.SEND, MessageClass.INDICATION)
    send.add_xor_address(AttributeType.XOR_PEER_ADDRESS, PEER)
    send.add(AttributeType.DATA, b"x")
    server = client.harness.server
    assert server.handle_stun(send.encode(), CONTROL, 1.0) is None
    assert server.stats.dropped["tcp-allocation"] == 1


# -- Connect (client-initiated) ------------------------------------------------------


def test_connect_then_connection_bind_splices_the_connections() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    harness = client.harness
    (action,) = harness.connects
    assert action.peer == PEER
    assert action.relay == harness.server.allocation(CONTROL).relays[4]  # type: ignore[union-attr]
    assert code_of(connection_bind(client, connection_id)) is None
    assert harness.binds == [BindData(connection_id, DATA)]
    assert harness.server.tcp.is_data_client(DATA)
    assert harness.server.stats.tcp_connections == 1


def test_connect_to_a_forbidden_peer_is_403_and_opens_nothing() -> None:
    client = tcp_allocated()
    answer = connect(client, ("127.0.0.1", 80))
    assert code_of(answer) == 403
    assert client.harness.connects == []


def test_connect_without_allocation_is_437_and_on_a_udp_allocation_400() -> None:
    harness = make_server(allow=PEER_ALLOWED)
    nobody = Client(harness, client=CONTROL)
    nobody.challenge()
    assert code_of(connect(nobody)) == 437
    udp_over_tcp = Client(harness, client=("tcp", ("192.0.2.11", 4000), SERVER))
    assert code_of(udp_over_tcp.allocate()) is None
    assert code_of(connect(udp_over_tcp)) == 400


def test_second_connect_to_the_same_peer_is_446_while_connecting_and_once_bound() -> None:
    client = tcp_allocated()
    assert connect(client) is None
    assert code_of(connect(client)) == 446
    connection_id = client.harness.connects[0].connection
    assert client.harness.server.tcp.peer_connected(connection_id, 1.0)
    assert code_of(last_answer(client.harness)) is None
    assert code_of(connection_bind(client, connection_id)) is None
    assert code_of(connect(client)) == 446
    assert connect(client, ("192.0.2.99", 7001)) is None  # another port is another peer


def test_failed_connect_is_447() -> None:
    client = tcp_allocated()
    assert connect(client) is None
    harness = client.harness
    harness.server.tcp.peer_connect_failed(harness.connects[0].connection)
    assert code_of(last_answer(harness)) == 447
    assert harness.server.stats.tcp_connections == 0
    assert connect(client) is None  # the peer may be tried again


def test_connect_times_out_with_447_after_30_seconds() -> None:
    client = tcp_allocated()
    assert connect(client) is None
    harness = client.harness
    harness.advance(CONNECT_TIMEOUT - 1)
    assert harness.peer_closes == []
    harness.advance(1)
    assert code_of(parse(harness.sent[-1].data)) == 447
    connection_id = harness.connects[0].connection
    assert harness.peer_closes == [ClosePeer(connection_id)]
    assert not harness.server.tcp.peer_connected(connection_id, harness.now)  # too late


def test_unbound_peer_connection_is_closed_after_30_seconds() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    harness = client.harness
    harness.advance(BIND_TIMEOUT - 1)
    assert harness.peer_closes == []
    harness.advance(1)
    assert harness.peer_closes == [ClosePeer(connection_id)]
    assert code_of(connection_bind(client, connection_id)) == 400


def test_bound_connection_has_no_bind_timeout() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id)) is None
    client.harness.advance(BIND_TIMEOUT + 1)
    assert client.harness.peer_closes == []


# -- ConnectionBind's refusals ---------------------------------------------------------


def test_connection_bind_refusals() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id + 1)) == 400  # unknown id
    udp = ("udp", ("192.0.2.10", 50002), SERVER)
    assert code_of(connection_bind(client, connection_id, udp)) == 400  # not over TCP/TLS
    assert code_of(connection_bind(client, connection_id, CONTROL)) == 400  # has an allocation
    bob = Client(client.harness, "bob", "builder", client=DATA)
    bob.nonce = client.nonce
    builder = MessageBuilder(Method.CONNECTION_BIND, MessageClass.REQUEST)
    builder.add_u32(AttributeType.CONNECTION_ID, connection_id)
    assert code_of(bob.send(builder)) == 441  # another user's connection
    assert code_of(connection_bind(client, connection_id)) is None
    other = ("tcp", ("192.0.2.10", 50003), SERVER)
    assert code_of(connection_bind(client, connection_id, other)) == 400  # bound already
    assert client.harness.binds == [BindData(connection_id, DATA)]


def test_unauthenticated_connection_bind_is_401_and_binds_nothing() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    builder = MessageBuilder(Method.CONNECTION_BIND, MessageClass.REQUEST)
    builder.add_u32(AttributeType.CONNECTION_ID, connection_id)
    assert code_of(client.harness.request(builder.encode(), DATA)) == 401
    assert client.harness.binds == []


# -- peer-initiated connections (ConnectionAttempt) ----------------------------------


def test_peer_without_permission_is_turned_away() -> None:
    client = tcp_allocated()
    server = client.harness.server
    alloc = server.allocation(CONTROL)
    assert alloc is not None
    assert server.tcp.peer_accepted(alloc, PEER, 1.0) is None
    assert server.stats.tcp_connections == 0


def test_peer_with_permission_gets_a_connection_attempt_then_a_bind() -> None:
    client = tcp_allocated()
    permit(client)
    harness = client.harness
    alloc = harness.server.allocation(CONTROL)
    assert alloc is not None
    connection_id = harness.server.tcp.peer_accepted(alloc, PEER, harness.now)
    assert connection_id is not None
    harness.pump()
    indication = parse(harness.sent[-1].data)
    assert indication.method == Method.CONNECTION_ATTEMPT
    assert indication.message_class is MessageClass.INDICATION
    assert harness.sent[-1].client == CONTROL
    assert [(p.ip, p.port) for p in indication.xor_peer_addresses] == [PEER]
    assert indication.get(AttributeType.CONNECTION_ID) == connection_id.to_bytes(4)
    assert code_of(connection_bind(client, connection_id)) is None
    assert harness.binds == [BindData(connection_id, DATA)]


def test_peer_connections_per_allocation_are_capped() -> None:
    client = tcp_allocated()
    permit(client)
    server = client.harness.server
    alloc = server.allocation(CONTROL)
    assert alloc is not None
    ids = [server.tcp.peer_accepted(alloc, ("192.0.2.99", 1000 + n), 1.0) for n in range(70)]
    assert all(i is not None for i in ids[:MAX_CONNECTIONS])
    assert all(i is None for i in ids[MAX_CONNECTIONS:])
    client.harness.pump()  # the ConnectionAttempt indications
    assert code_of(connect(client, ("192.0.2.98", 1))) == 508


# -- closing -------------------------------------------------------------------------


def test_control_connection_closing_closes_every_peer_connection() -> None:
    client = tcp_allocated()
    first = connected(client)
    assert code_of(connection_bind(client, first)) is None
    second = connected(client, ("192.0.2.99", 7001))
    harness = client.harness
    harness.server.client_closed(CONTROL)
    harness.pump()
    assert sorted(c.connection for c in harness.peer_closes) == sorted([first, second])
    assert len(harness.closed) == 1  # the listening socket
    assert harness.server.stats.tcp_connections == 0
    assert not harness.server.tcp.is_data_client(DATA)


def test_data_connection_closing_closes_its_peer_connection_only() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id)) is None
    harness = client.harness
    harness.server.client_closed(DATA)
    harness.pump()
    assert harness.peer_closes == [ClosePeer(connection_id)]
    assert harness.server.allocation(CONTROL) is not None
    assert connect(client) is None  # the peer is free again: no refusal


def test_peer_closing_frees_the_peer() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id)) is None
    server = client.harness.server
    server.tcp.peer_closed(connection_id)
    assert server.stats.tcp_connections == 0
    assert not server.tcp.is_data_client(DATA)
    assert connect(client) is None


def test_allocation_expiry_closes_its_connections() -> None:
    client = tcp_allocated()
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id)) is None
    harness = client.harness
    harness.advance(601)
    assert harness.server.allocation(CONTROL) is None
    assert harness.peer_closes == [ClosePeer(connection_id)]


def test_bound_connections_owe_the_allocation_bandwidth_budget() -> None:
    """A stream cannot drop bytes: over budget, the adapter is told how long to wait."""
    harness = make_server(allow=PEER_ALLOWED, bandwidth=1000)
    client = Client(harness, client=CONTROL)
    assert code_of(client.allocate(TCP_PROTOCOL)) is None
    connection_id = connected(client)
    assert code_of(connection_bind(client, connection_id)) is None
    tcp = harness.server.tcp
    assert tcp.charge(connection_id, 600, 1.0) == 0.0  # within the one-second burst
    assert tcp.charge(connection_id, 900, 1.0) == pytest.approx(0.5)  # 500 bytes owed
    assert tcp.charge(connection_id, 0, 1.5) == 0.0  # paid back by then
    assert tcp.charge(connection_id, 1, 1.5) > 0.0
    assert tcp.charge(connection_id + 1, 10**6, 1.5) == 0.0  # unknown: nothing to hold


def test_no_cap_means_no_wait() -> None:
    harness = make_server(allow=PEER_ALLOWED, bandwidth=0)
    client = Client(harness, client=CONTROL)
    assert code_of(client.allocate(TCP_PROTOCOL)) is None
    connection_id = connected(client)
    assert harness.server.tcp.charge(connection_id, 10**9, 1.0) == 0.0
