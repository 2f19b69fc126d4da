"""The TURN server core with a fake clock: authentication, allocations, permissions,
channels, relaying, expiry, quotas and hostile input."""

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.stun import (
    AttributeType,
    MessageBuilder,
    MessageClass,
    Method,
    PasswordAlgorithm,
    PasswordAlgorithmEntry,
    parse,
    verify_message_integrity,
    verify_message_integrity_sha256,
)
from peerline.stun.attributes import encode_byte
from peerline.turn.auth import NonceCheck, Nonces, rest_password
from peerline.turn.channeldata import decode_channel_data, encode_channel_data
from peerline.turn.tcp_relay import TCP_PROTOCOL
from tests.unit.turn_harness import (
    CLIENT,
    CLIENT_KEY,
    PEER,
    REALM,
    WALL,
    Client,
    allocate_request,
    code_of,
    make_server,
)

PEER_ALLOWED = ("192.0.2.0/24",)


def allocated(**kwargs: object) -> Client:
    harness = make_server(allow=PEER_ALLOWED, **kwargs)  # type: ignore[arg-type]
    client = Client(harness)
    assert code_of(client.allocate()) is None
    return client


# -- authentication -----------------------------------------------------------------


def test_unauthenticated_allocate_gets_401_and_leaves_no_state() -> None:
    harness = make_server()
    answer = harness.request(allocate_request().encode())
    assert code_of(answer) == 401
    assert answer is not None
    assert answer.realm == REALM
    assert answer.nonce
    assert answer.password_algorithms is not None
    assert harness.server.allocation_count == 0
    assert harness.server.get_timer() is None
    assert harness.server._pending == {}


def test_allocate_with_long_term_credentials() -> None:
    client = Client(make_server())
    answer = client.allocate()
    assert code_of(answer) is None
    assert verify_message_integrity(answer, client.key)
    assert answer.xor_relayed_address is not None
    assert answer.xor_relayed_address.ip == "198.51.100.1"
    assert answer.xor_mapped_address == CLIENT
    assert answer.lifetime == 600


def test_wrong_password_and_unknown_user_get_401() -> None:
    harness = make_server()
    assert code_of(Client(harness, password="nope").allocate()) == 401
    assert code_of(Client(harness, username="mallory").allocate()) == 401
    assert harness.server.allocation_count == 0


def test_rest_credentials_valid_and_expired() -> None:
    harness = make_server()
    username = f"{int(WALL) + 3600}:carol"
    good = Client(harness, username=username, password=rest_password("s3cret", username))
    assert code_of(good.allocate()) is None
    expired_name = f"{int(WALL) - 1}:carol"
    other = ("udp", ("192.0.2.11", 1), ("198.51.100.1", 3478))
    expired = Client(
        harness, username=expired_name, password=rest_password("s3cret", expired_name), client=other
    )
    assert code_of(expired.allocate()) == 401


def test_rest_password_is_base64_hmac_sha1() -> None:
    expected = base64.b64encode(hmac.new(b"k", b"1:u", hashlib.sha1).digest()).decode()
    assert rest_password("k", "1:u") == expected


def test_sha256_password_algorithm() -> None:
    harness = make_server()
    client = Client(harness)
    challenge = client.challenge()
    assert challenge.password_algorithms is not None
    key = hashlib.sha256(f"alice:{REALM}:wonderland".encode()).digest()
    builder = allocate_request()
    builder.add_password_algorithms(challenge.password_algorithms)
    builder.add_password_algorithm(PasswordAlgorithmEntry(PasswordAlgorithm.SHA256))
    builder.add_text(AttributeType.USERNAME, "alice")
    builder.add_text(AttributeType.REALM, REALM)
    builder.add_text(AttributeType.NONCE, client.nonce)
    answer = harness.request(builder.encode(integrity_sha256_key=key))
    assert code_of(answer) is None
    assert answer is not None
    assert verify_message_integrity_sha256(answer, key)


def test_stale_and_forged_nonces_get_438() -> None:
    harness = make_server()
    client = Client(harness)
    client.challenge()
    harness.now += 601
    answer = client.send(allocate_request(), renew=False)
    assert code_of(answer) == 438
    assert answer.nonce
    assert answer.nonce != client.nonce
    client.nonce = answer.nonce
    assert code_of(client.allocate()) is None
    other = Client(harness, client=("udp", ("192.0.2.12", 9), ("198.51.100.1", 3478)))
    other.nonce = client.nonce  # bound to another client's address
    assert code_of(other.send(allocate_request(), renew=False)) == 438


def test_nonce_checks() -> None:
    nonces = Nonces(b"x" * 32, 10, offer_sha256=False)
    nonce = nonces.make("192.0.2.1", 100.0)
    assert nonces.check(nonce, "192.0.2.1", 105.0) is NonceCheck.VALID
    assert nonces.check(nonce, "192.0.2.1", 111.0) is NonceCheck.STALE
    assert nonces.check(nonce, "192.0.2.2", 105.0) is NonceCheck.FORGED
    assert nonces.check(nonce[:-1] + "A", "192.0.2.1", 105.0) is NonceCheck.FORGED
    assert nonces.check("garbage", "192.0.2.1", 105.0) is NonceCheck.FORGED


def test_unauthenticated_requests_are_rate_limited() -> None:
    harness = make_server()
    answers = [harness.request(allocate_request().encode()) for _ in range(200)]
    assert 0 < sum(a is not None for a in answers) < 100
    assert harness.server.stats.dropped["rate-limited"] > 0


# -- Allocate ------------------------------------------------------------------------


def test_second_allocate_is_437_but_a_retransmission_gets_the_same_answer() -> None:
    client = Client(make_server())
    client.challenge()
    request = client.signed(allocate_request())
    first = client.harness.request(request)
    again = client.harness.request(request)
    assert first is not None
    assert again is not None
    assert first.raw == again.raw
    assert code_of(client.allocate()) == 437


def test_requested_transport_missing_unknown_or_tcp_over_udp() -> None:
    client = Client(make_server())
    client.challenge()
    assert code_of(client.send(MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST))) == 400
    assert code_of(client.send(allocate_request(132))) == 442  # SCTP: not relayed
    # RFC 6062 §5.1: a TCP relay only for a client over TCP or TLS.
    assert code_of(client.send(allocate_request(TCP_PROTOCOL))) == 400
    assert client.harness.server.allocation_count == 0


def test_even_port_and_reservation_token() -> None:
    harness = make_server()
    first = Client(harness)
    answer = first.allocate(even_port=b"\x80")
    assert code_of(answer) is None
    relayed = answer.xor_relayed_address
    assert relayed is not None
    assert relayed.port % 2 == 0
    token = answer.get(AttributeType.RESERVATION_TOKEN)
    assert token is not None
    second = Client(harness, client=("udp", ("192.0.2.20", 5), ("198.51.100.1", 3478)))
    answer = second.allocate(reservation_token=token)
    assert code_of(answer) is None
    assert answer.xor_relayed_address == (relayed.ip, relayed.port + 1)
    third = Client(harness, client=("udp", ("192.0.2.21", 5), ("198.51.100.1", 3478)))
    assert code_of(third.allocate(reservation_token=token)) == 508  # used up


def test_unused_reservation_is_released_after_30_seconds() -> None:
    harness = make_server()
    answer = Client(harness).allocate(even_port=b"\x80")
    assert code_of(answer) is None
    harness.advance(31)
    assert [len(c.handles) for c in harness.closed] == [1]
    token = answer.get(AttributeType.RESERVATION_TOKEN)
    assert token is not None
    other = Client(harness, client=("udp", ("192.0.2.20", 5), ("198.51.100.1", 3478)))
    assert code_of(other.allocate(reservation_token=token)) == 508


def test_reservation_token_with_even_port_is_400() -> None:
    client = Client(make_server())
    assert code_of(client.allocate(even_port=b"\x00", reservation_token=bytes(8))) == 400


def test_address_families() -> None:
    client = Client(make_server())
    assert code_of(client.allocate(requested_address_family=encode_byte(2))) == 440
    assert code_of(client.allocate(requested_address_family=encode_byte(9))) == 440
    both = {"requested_address_family": encode_byte(1), "additional_address_family": encode_byte(2)}
    assert code_of(client.allocate(**both)) == 400
    answer = client.allocate(additional_address_family=encode_byte(2))
    assert code_of(answer) is None
    error = answer.get(AttributeType.ADDRESS_ERROR_CODE)
    assert error is not None
    assert error[0] == 2
    assert error[2:4] == bytes((4, 40))


def test_dual_allocation_relays_both_families() -> None:
    harness = make_server(relay_ips=("198.51.100.1", "2001:db8::1"))
    answer = Client(harness).allocate(additional_address_family=encode_byte(2))
    relayed = [
        parse(answer.raw).attributes[i]
        for i, t in enumerate(answer.types())
        if t == AttributeType.XOR_RELAYED_ADDRESS
    ]
    assert len(relayed) == 2
    v6 = Client(harness, client=("udp", ("192.0.2.13", 5), ("198.51.100.1", 3478)))
    answer = v6.allocate(requested_address_family=encode_byte(2))
    assert answer.xor_relayed_address is not None
    assert answer.xor_relayed_address.ip == "2001:db8::1"


def test_lifetime_is_clamped() -> None:
    client = allocated()
    assert client.refresh(100000).lifetime == 3600
    assert client.refresh(1).lifetime == 600


def test_relay_socket_failure_is_508() -> None:
    harness = make_server()
    harness.fail_relays = True
    assert code_of(Client(harness).allocate()) == 508
    assert harness.server.allocation_count == 0


# -- Refresh -------------------------------------------------------------------------


def test_refresh_zero_deletes_and_closes_the_relay() -> None:
    client = allocated()
    answer = client.refresh(0)
    assert code_of(answer) is None
    assert answer.lifetime == 0
    assert client.harness.server.allocation_count == 0
    assert len(client.harness.closed) == 1
    assert code_of(client.refresh()) == 437


def test_requests_without_allocation_are_437_and_another_user_is_441() -> None:
    harness = make_server(allow=PEER_ALLOWED)
    client = Client(harness)
    client.challenge()
    assert code_of(client.refresh()) == 437
    assert code_of(client.permission(PEER)) == 437
    client.allocate()
    intruder = Client(harness, username="bob", password="builder")
    intruder.nonce = client.nonce
    assert code_of(intruder.refresh()) == 441


def test_allocation_expires() -> None:
    client = allocated()
    client.harness.advance(599)
    assert client.harness.server.allocation_count == 1
    client.harness.advance(2)
    assert client.harness.server.allocation_count == 0
    assert client.harness.server.stats.allocations_expired == 1


def test_refresh_extends_the_allocation() -> None:
    client = allocated()
    client.harness.advance(500)
    client.refresh(600)
    client.harness.advance(500)
    assert client.harness.server.allocation_count == 1
    client.harness.advance(101)
    assert client.harness.server.allocation_count == 0


# -- permissions, channels and relaying ---------------------------------------------


def relay_of(client: Client) -> object:
    alloc = client.harness.server.allocation(client.client)
    assert alloc is not None
    return alloc


def test_permission_then_send_indication_and_data_indication() -> None:
    client = allocated()
    server = client.harness.server
    send = (
        MessageBuilder(Method.SEND, MessageClass.INDICATION)
        .add_xor_address(AttributeType.XOR_PEER_ADDRESS, PEER)
        .add(AttributeType.DATA, b"hello")
        .encode()
    )
    assert server.handle_stun(send, CLIENT_KEY, 1.0) is None  # no permission yet
    assert code_of(client.permission(PEER)) is None
    out = server.handle_stun(send, CLIENT_KEY, 1.0)
    assert out is not None
    assert out[1:] == (b"hello", PEER)
    alloc = server.allocation(CLIENT_KEY)
    assert alloc is not None
    reply = server.peer_data(alloc, b"world", PEER, 1.0)
    assert reply is not None
    indication = parse(reply)
    assert indication.method == Method.DATA
    assert indication.message_class is MessageClass.INDICATION
    assert indication.xor_peer_addresses == [PEER]
    assert indication.data == b"world"
    assert server.peer_data(alloc, b"x", ("192.0.2.98", 1), 1.0) is None  # no permission


def test_channel_bind_and_channel_data_both_ways() -> None:
    client = allocated()
    server = client.harness.server
    assert code_of(client.bind(0x4000, PEER)) is None
    out = server.channel_data(encode_channel_data(0x4000, b"ping"), CLIENT_KEY, 1.0)
    assert out is not None
    assert out[1:] == (b"ping", PEER)
    alloc = server.allocation(CLIENT_KEY)
    assert alloc is not None
    reply = server.peer_data(alloc, b"pong", PEER, 1.0)
    assert reply is not None
    assert decode_channel_data(reply) == (0x4000, b"pong")
    assert server.channel_data(encode_channel_data(0x4001, b"x"), CLIENT_KEY, 1.0) is None
    assert server.channel_data(b"\x40\x00\x00\x09ab", CLIENT_KEY, 1.0) is None  # short
    assert server.stats.packets_to_peers == 1
    assert server.stats.bytes_from_peers == 4


def test_channel_data_over_tcp_is_padded() -> None:
    harness = make_server(allow=PEER_ALLOWED)
    tcp = ("tcp", CLIENT, ("198.51.100.1", 3478))
    client = Client(harness, client=tcp)
    client.allocate()
    client.bind(0x4001, PEER)
    alloc = harness.server.allocation(tcp)
    assert alloc is not None
    reply = harness.server.peer_data(alloc, b"abcde", PEER, 1.0)
    assert reply == b"\x40\x01\x00\x05abcde\x00\x00\x00"


def test_channel_bind_errors() -> None:
    client = allocated()
    other = ("192.0.2.77", 1)
    assert code_of(client.bind(0x3FFF, PEER)) == 400
    assert code_of(client.bind(0x7FFF, PEER)) == 400
    assert code_of(client.bind(0x4000, PEER)) is None
    assert code_of(client.bind(0x4000, PEER)) is None  # refresh
    assert code_of(client.bind(0x4000, other)) == 400  # number taken
    assert code_of(client.bind(0x4002, PEER)) == 400  # peer taken
    assert code_of(client.bind(0x4003, ("2001:db8::5", 1))) == 443


def test_permission_and_channel_expiry() -> None:
    client = allocated()
    harness = client.harness
    client.bind(0x4000, PEER)
    stats = harness.server.stats
    assert (stats.permissions, stats.channels) == (1, 1)
    harness.advance(301)
    assert stats.permissions == 0
    assert (
        harness.server.channel_data(encode_channel_data(0x4000, b"x"), CLIENT_KEY, harness.now)
        is None
    )
    client.refresh()
    harness.advance(300)
    assert stats.channels == 0
    # The number stays reserved for that peer for 5 minutes.
    assert code_of(client.bind(0x4000, ("192.0.2.77", 1))) == 400
    assert code_of(client.bind(0x4000, PEER)) is None


def test_peer_policy_refuses_with_403() -> None:
    client = Client(make_server())
    client.allocate()
    for peer in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "198.51.100.1", "0.0.0.0"):
        assert code_of(client.permission((peer, 9))) == 403, peer
        assert code_of(client.bind(0x4000, (peer, 9))) == 403, peer
    assert client.harness.server.stats.refusals["peer-special-purpose"] > 0
    assert client.harness.server.stats.permissions == 0


def test_peer_family_mismatch() -> None:
    client = allocated()
    assert code_of(client.permission(("2001:db8::5", 9))) == 443


def test_permission_quota() -> None:
    client = allocated(max_permissions=2)
    assert code_of(client.permission(("192.0.2.1", 1), ("192.0.2.2", 1))) is None
    assert code_of(client.permission(("192.0.2.3", 1))) == 508


# -- quotas and budgets ----------------------------------------------------------------


def clients(
    harness: object, count: int, username: str = "alice", password: str = "wonderland"
) -> list[Client]:
    return [
        Client(
            harness,  # type: ignore[arg-type]
            username=username,
            password=password,
            client=("udp", ("192.0.2.50", 1000 + i), ("198.51.100.1", 3478)),
        )
        for i in range(count)
    ]


def test_user_quota_is_486() -> None:
    harness = make_server(user_quota=2)
    codes = [code_of(c.allocate()) for c in clients(harness, 3)]
    assert codes == [None, None, 486]
    assert code_of(clients(harness, 4, "bob", "builder")[3].allocate()) is None


def test_server_quota_is_508() -> None:
    harness = make_server(max_allocations=2)
    codes = [code_of(c.allocate()) for c in clients(harness, 3)]
    assert codes == [None, None, 508]


def test_bandwidth_cap_drops_the_excess() -> None:
    client = allocated(bandwidth=1000)
    server = client.harness.server
    client.bind(0x4000, PEER)
    packet = encode_channel_data(0x4000, bytes(400))
    sent = [server.channel_data(packet, CLIENT_KEY, 10.0) is not None for _ in range(5)]
    assert sent == [True, True, False, False, False]
    assert server.channel_data(packet, CLIENT_KEY, 11.0) is not None
    assert server.stats.dropped["bandwidth"] == 3


# -- hostile input ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises(data: bytes) -> None:
    client = allocated()
    server = client.harness.server
    server.handle_stun(data, CLIENT_KEY, 1.0)
    server.channel_data(data, CLIENT_KEY, 1.0)
    server.pop_actions()
    alloc = server.allocation(CLIENT_KEY)
    assert alloc is not None
    server.peer_data(alloc, data, PEER, 1.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(list(AttributeType)), st.binary(max_size=24)), max_size=6),
    st.sampled_from(
        [Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND]
    ),
)
def test_signed_requests_with_random_attributes_never_raise(
    attrs: list[tuple[AttributeType, bytes]], method: Method
) -> None:
    client = allocated()
    builder = MessageBuilder(method, MessageClass.REQUEST)
    for kind, value in attrs:
        if kind not in (
            AttributeType.MESSAGE_INTEGRITY,
            AttributeType.MESSAGE_INTEGRITY_SHA256,
            AttributeType.FINGERPRINT,
            AttributeType.USERNAME,
            AttributeType.REALM,
            AttributeType.NONCE,
        ):
            builder.add(kind, value)
    answer = client.harness.request(client.signed(builder))
    assert answer is None or answer.message_class in (MessageClass.SUCCESS, MessageClass.ERROR)


def test_non_turn_method_is_400() -> None:
    harness = make_server()
    answer = harness.request(MessageBuilder(Method.SEND, MessageClass.REQUEST).encode())
    assert code_of(answer) == 400


def test_unknown_comprehension_required_attribute_after_auth_is_420() -> None:
    client = Client(make_server())
    answer = client.allocate(**{})
    assert code_of(answer) is None
    builder = MessageBuilder(Method.REFRESH, MessageClass.REQUEST).add(0x7F01, b"x")
    answer = client.send(builder)
    assert code_of(answer) == 420
    assert answer.unknown_attributes == [0x7F01]


@pytest.mark.parametrize("lifetime", [0, 1, 600])
def test_nonce_in_challenge_is_bound_to_client(lifetime: int) -> None:
    nonces = Nonces(b"y" * 32, 600, offer_sha256=True)
    assert nonces.make(CLIENT[0], WALL + lifetime).startswith("obMatJos2")
