"""A TURN client by hand, for attacks: exact bytes on the wire, one request at a time.

peerline's own client is polite (it writes an IPv4-mapped peer as IPv4, as a peer
would want); an attacker is not. `RawTurn` writes XOR-PEER-ADDRESS with the family
of the literal it is given, so `::ffff:127.0.0.1` reaches the server as IPv6.
"""

import socket

from peerline.stun import (
    MAGIC_COOKIE,
    AttributeType,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    long_term_key,
    parse,
)
from peerline.stun.attributes import encode_byte
from peerline.turn.server import UDP_PROTOCOL


def xor_peer_address(ip: str, port: int, transaction_id: bytes) -> bytes:
    """XOR-PEER-ADDRESS for `ip` as written: family 2 for any literal with a colon."""
    six = ":" in ip
    packed = socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, ip)
    mask = (MAGIC_COOKIE.to_bytes(4, "big") + transaction_id)[: len(packed)]
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=True))
    head = bytes((0, 2 if six else 1)) + (port ^ (MAGIC_COOKIE >> 16)).to_bytes(2, "big")
    return head + xored


def allocate_request(**text: str) -> MessageBuilder:
    """An Allocate for a UDP relay, with USERNAME/REALM/NONCE when given."""
    builder = MessageBuilder(Method.ALLOCATE, MessageClass.REQUEST)
    builder.add(AttributeType.REQUESTED_TRANSPORT, encode_byte(UDP_PROTOCOL))
    for name, value in text.items():
        builder.add_text(AttributeType[name.upper()], value)
    return builder


def error_code(message: Message) -> int | None:
    value = message.error_code
    return None if value is None else int(value.code)


def udp_socket(server: tuple[str, int], source_ip: str) -> socket.socket:
    """A UDP socket from `source_ip` (any 127.x address) connected to `server`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.bind((source_ip, 0))
    sock.connect(server)
    return sock


def exchange(sock: socket.socket, data: bytes) -> Message:
    """Send one request and read the answer (skipping indications)."""
    sock.send(data)
    while True:
        answer = parse(sock.recv(65536))
        if answer.message_class is not MessageClass.INDICATION:
            return answer


class RawTurn:
    """One allocation over a UDP socket from `source_ip` (any 127.x address)."""

    def __init__(
        self, server: tuple[str, int], source_ip: str, username: str, password: str
    ) -> None:
        self.sock = udp_socket(server, source_ip)
        self.username = username
        self.password = password
        self.realm = ""
        self.nonce = ""
        self.key = b""

    def close(self) -> None:
        self.sock.close()

    def exchange(self, data: bytes) -> Message:
        return exchange(self.sock, data)

    def signed(self, builder: MessageBuilder) -> Message:
        """`builder` (its transaction id kept: XOR addresses depend on it) with the
        long-term credentials, sent; the answer."""
        builder.add_text(AttributeType.USERNAME, self.username)
        builder.add_text(AttributeType.REALM, self.realm)
        builder.add_text(AttributeType.NONCE, self.nonce)
        return self.exchange(builder.encode(integrity_key=self.key))

    def allocate(self, family: int = 4) -> Message:
        """Allocate through the 401 challenge; the success response."""

        def request() -> MessageBuilder:
            builder = allocate_request()
            if family == 6:
                builder.add(AttributeType.REQUESTED_ADDRESS_FAMILY, encode_byte(2))  # IPv6
            return builder

        challenge = self.exchange(request().encode())
        if error_code(challenge) != 401:
            raise AssertionError(f"expected a 401 challenge, got {challenge}")
        self.realm, self.nonce = challenge.realm or "", challenge.nonce or ""
        self.key = long_term_key(self.username, self.realm, self.password)
        answer = self.signed(request())
        if answer.message_class is not MessageClass.SUCCESS:
            raise AssertionError(f"allocation refused: {answer}")
        return answer

    def _with_peer(self, method: Method, ip: str, port: int) -> MessageBuilder:
        builder = MessageBuilder(method, MessageClass.REQUEST)
        tid = builder.transaction_id
        return builder.add(AttributeType.XOR_PEER_ADDRESS, xor_peer_address(ip, port, tid))

    def create_permission(self, ip: str) -> int | None:
        """None on success, else the error code."""
        return error_code(self.signed(self._with_peer(Method.CREATE_PERMISSION, ip, 0)))

    def channel_bind(self, number: int, ip: str, port: int) -> int | None:
        """None on success, else the error code."""
        builder = self._with_peer(Method.CHANNEL_BIND, ip, port)
        builder.add_port(AttributeType.CHANNEL_NUMBER, number)
        return error_code(self.signed(builder))

    def send_indication(self, ip: str, port: int, data: bytes) -> None:
        builder = MessageBuilder(Method.SEND, MessageClass.INDICATION)
        tid = builder.transaction_id
        builder.add(AttributeType.XOR_PEER_ADDRESS, xor_peer_address(ip, port, tid))
        self.sock.send(builder.add(AttributeType.DATA, data).encode())

    def deallocate(self) -> None:
        refresh = MessageBuilder(Method.REFRESH, MessageClass.REQUEST)
        self.signed(refresh.add_u32(AttributeType.LIFETIME, 0))
