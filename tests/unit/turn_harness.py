"""A fake adapter and a scripted client for driving the TURN server core by hand."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from peerline.stun import AttributeType, Message, MessageBuilder, MessageClass, Method, parse
from peerline.stun.attributes import encode_byte
from peerline.turn.allocation import (
    BindData,
    ClosePeer,
    CloseRelays,
    ConnectPeer,
    OpenRelays,
    ToClient,
)
from peerline.turn.auth import Credentials, md5_key
from peerline.turn.config import TurnConfig
from peerline.turn.policy import PeerPolicy
from peerline.turn.server import UDP_PROTOCOL, TurnServer
from peerline.users import User

REALM = "example.org"
SERVER = ("198.51.100.1", 3478)
SERVER6 = ("2001:db8::1", 3478)
CLIENT = ("192.0.2.10", 50000)
CLIENT_KEY = ("udp", CLIENT, SERVER)
PEER = ("192.0.2.99", 7000)
WALL = 1_800_000_000.0


@dataclass(frozen=True)
class FakeRelay:
    """Stands in for a relay socket: the address the fake adapter 'bound'."""

    address: tuple[str, int]


@dataclass
class Harness:
    server: TurnServer[FakeRelay]
    now: float = 0.0
    sent: list[ToClient] = field(default_factory=list)
    closed: list[CloseRelays[FakeRelay]] = field(default_factory=list)
    #: RFC 6062 actions, in order.
    connects: list[ConnectPeer[FakeRelay]] = field(default_factory=list)
    binds: list[BindData] = field(default_factory=list)
    peer_closes: list[ClosePeer] = field(default_factory=list)
    ports: itertools.count[int] = field(default_factory=lambda: itertools.count(49152))
    fail_relays: bool = False

    def pump(self) -> None:
        """Play the adapter: bind relays at once, collect everything else."""
        for action in self.server.pop_actions():
            if isinstance(action, ToClient):
                self.sent.append(action)
            elif isinstance(action, OpenRelays):
                if self.fail_relays:
                    self.server.relays_failed(action.token, self.now)
                    continue
                opened = []
                reserved = None
                if action.reuse is not None:
                    opened.append((4, action.reuse[0], action.reuse[1]))
                for family, ip in action.addresses if action.reuse is None else ():
                    port = next(self.ports)
                    port += port & 1 if action.even_port else 0
                    address = (ip, port)
                    opened.append((family, address, FakeRelay(address)))
                    if action.reserve_next:
                        reserved = ((ip, port + 1), FakeRelay((ip, port + 1)))
                        next(self.ports)
                self.server.relays_opened(action.token, opened, self.now, reserved=reserved)
            elif isinstance(action, ConnectPeer):
                self.connects.append(action)
            elif isinstance(action, BindData):
                self.binds.append(action)
            elif isinstance(action, ClosePeer):
                self.peer_closes.append(action)
            else:
                self.closed.append(action)
        # relays_opened may queue the answer: collect it too.
        for action in self.server.pop_actions():
            assert isinstance(action, ToClient)
            self.sent.append(action)

    def request(
        self, data: bytes, client: tuple[str, tuple[str, int], tuple[str, int]] = CLIENT_KEY
    ) -> Message | None:
        """Send a STUN message; the one answer, parsed (None when dropped)."""
        before = len(self.sent)
        self.server.handle_stun(data, client, self.now)
        self.pump()
        answers = self.sent[before:]
        assert len(answers) <= 1
        return parse(answers[0].data) if answers else None

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.server.handle_timer(self.now)
        self.pump()


def make_server(
    *,
    allow: tuple[str, ...] = (),
    relay_ips: tuple[str, ...] = ("198.51.100.1",),
    secret: str | None = "s3cret",
    **overrides: object,
) -> Harness:
    config = TurnConfig(
        realm=REALM,
        relay_ips=relay_ips,
        policy=PeerPolicy.build(allow, ["198.51.100.1"]),
        nonce_secret=b"k" * 32,
        **overrides,  # type: ignore[arg-type]
    )
    users = [User("alice", password="wonderland"), User("bob", password="builder")]
    credentials = Credentials.build(REALM, users, secret)
    return Harness(TurnServer(config, credentials, now=0.0, wall_offset=WALL))


class Client:
    """Builds signed requests the way a TURN client would, after one 401."""

    def __init__(
        self,
        harness: Harness,
        username: str = "alice",
        password: str = "wonderland",
        client: tuple[str, tuple[str, int], tuple[str, int]] = CLIENT_KEY,
    ) -> None:
        self.harness = harness
        self.username = username
        self.key = md5_key(username, REALM, password)
        self.client = client
        self.nonce = ""

    def challenge(self) -> Message:
        answer = self.harness.request(allocate_request().encode(), self.client)
        assert answer is not None
        assert answer.nonce is not None
        self.nonce = answer.nonce
        return answer

    def signed(self, builder: MessageBuilder, *, fingerprint: bool = False) -> bytes:
        builder.add_text(AttributeType.USERNAME, self.username)
        builder.add_text(AttributeType.REALM, REALM)
        builder.add_text(AttributeType.NONCE, self.nonce)
        return builder.encode(integrity_key=self.key, fingerprint=fingerprint)

    def send(self, builder: MessageBuilder, *, renew: bool = True) -> Message:
        """Send signed; after a 438 take the new nonce and send again, as clients do."""
        unsigned = builder.build()
        copy = MessageBuilder(unsigned.method, unsigned.message_class)
        copy.add_encoded(unsigned.raw[20:])
        answer = self.harness.request(self.signed(copy), self.client)
        assert answer is not None
        error = answer.error_code
        if renew and error is not None and error.code == 438 and answer.nonce:
            self.nonce = answer.nonce
            return self.send(builder, renew=False)
        return answer

    def allocate(self, transport: int = UDP_PROTOCOL, **attrs: bytes) -> Message:
        if not self.nonce:
            self.challenge()
        builder = allocate_request(transport)
        for name, value in attrs.items():
            builder.add(AttributeType[name.upper()], value)
        return self.send(builder)

    def permission(self, *peers: tuple[str, int]) -> Message:
        builder = MessageBuilder(Method.CREATE_PERMISSION, MessageClass.REQUEST)
        for peer in peers:
            builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
        return self.send(builder)

    def bind(self, number: int, peer: tuple[str, int]) -> Message:
        builder = MessageBuilder(Method.CHANNEL_BIND, MessageClass.REQUEST)
        builder.add_port(AttributeType.CHANNEL_NUMBER, number)
        builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
        return self.send(builder)

    def refresh(self, lifetime: int | None = None) -> Message:
        builder = MessageBuilder(Method.REFRESH, MessageClass.REQUEST)
        if lifetime is not None:
            builder.add_u32(AttributeType.LIFETIME, lifetime)
        return self.send(builder)


def allocate_request(transport: int = UDP_PROTOCOL) -> MessageBuilder:
    return MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST).add(
        AttributeType.REQUESTED_TRANSPORT, encode_byte(transport)
    )


def code_of(message: Message | None) -> int | None:
    assert message is not None
    if message.message_class is MessageClass.SUCCESS:
        return None
    error = message.error_code
    assert error is not None
    return int(error.code)
