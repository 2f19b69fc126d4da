"""RFC 6062 TCP relays in the TURN server core, sans I/O.

A TCP allocation's relayed address is a listening socket. Its peers are TCP
connections, each named by a CONNECTION-ID: opened by the server on a Connect
request (client-initiated), or accepted from a peer that has a permission
(peer-initiated, announced to the client with a ConnectionAttempt indication).
Either way the client then opens a new TCP/TLS connection to the server and
sends ConnectionBind on it; from then on that connection and the peer's carry
each other's bytes unchanged, which the adapter does on its own (`BindData`).

Timers (RFC 6062 §5.2, §5.3): a Connect that has not connected in 30 s gets 447;
a peer connection not bound in 30 s is closed. Peers pass the same policy as
UDP ones (403), and one allocation holds at most `MAX_CONNECTIONS` of them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Generic

from peerline.net import Address
from peerline.stun import (
    AttributeType,
    ErrorCode,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
)
from peerline.turn.allocation import (
    IPV4,
    IPV6,
    Allocation,
    BindData,
    ClientKey,
    ClosePeer,
    ConnectPeer,
    H,
    ToClient,
)
from peerline.turn.gate import Authenticated

if TYPE_CHECKING:
    from peerline.turn.server import TurnServer

TCP_PROTOCOL = 6
#: RFC 6062 §5.2: a Connect may take at least 30 s before 447.
CONNECT_TIMEOUT = 30.0
#: RFC 6062 §5.2, §5.3: a peer connection not bound within 30 s is closed.
BIND_TIMEOUT = 30.0
#: Peer connections per allocation (pending and bound together).
MAX_CONNECTIONS = 64


class TcpState(Enum):
    CONNECTING = "connecting"  # Connect sent to the adapter, no answer yet
    PENDING = "pending"  # connected or accepted, waiting for ConnectionBind
    BOUND = "bound"  # spliced to a client data connection


@dataclass(slots=True)
class TcpConnection(Generic[H]):
    """One peer TCP connection of a TCP allocation (mutable: it changes state)."""

    id: int
    alloc: Allocation[H]
    peer: Address
    state: TcpState
    deadline: float
    #: The Connect request and its credentials, answered once the adapter reports.
    request: Message | None = None
    auth: Authenticated | None = None
    data_client: ClientKey | None = None


class TcpRelays(Generic[H]):
    """The TCP connections of every TCP allocation of one `TurnServer`: a part of the
    server core split out by topic, so it uses the server's own helpers."""

    def __init__(self, server: TurnServer[H]) -> None:
        self._server = server
        self.connections: dict[int, TcpConnection[H]] = {}
        self._by_data_client: dict[ClientKey, int] = {}

    def _new_id(self) -> int:
        while True:  # random, so one client cannot guess another's connection
            connection_id = secrets.randbits(32)
            if connection_id and connection_id not in self.connections:
                return connection_id

    def _add(self, conn: TcpConnection[H]) -> None:
        self.connections[conn.id] = conn
        conn.alloc.tcp_peers[conn.peer] = conn.id
        self._server.stats.tcp_connections += 1
        self._server._schedule_tcp(conn)

    def _forget(self, conn: TcpConnection[H]) -> None:
        del self.connections[conn.id]
        if conn.alloc.tcp_peers.get(conn.peer) == conn.id:
            del conn.alloc.tcp_peers[conn.peer]
        if conn.data_client is not None:
            self._by_data_client.pop(conn.data_client, None)
        self._server.stats.tcp_connections -= 1

    def close(self, conn: TcpConnection[H]) -> None:
        """Forget `conn` and have the adapter close both its ends."""
        self._forget(conn)
        self._server._actions.append(ClosePeer(conn.id))

    # -- Connect (RFC 6062 §5.2) -------------------------------------------------------

    def connect(self, message: Message, client: ClientKey, auth: Authenticated, now: float) -> None:
        server = self._server
        alloc = server._owned(message, client, auth)
        if alloc is None:
            return
        if not alloc.tcp:
            server._error(message, client, auth, ErrorCode.BAD_REQUEST, "not-tcp", alloc=alloc)
            return
        peers = [(p.ip, p.port) for p in message.xor_peer_addresses]
        if len(peers) != 1:
            server._error(message, client, auth, ErrorCode.BAD_REQUEST, "no-peer", alloc=alloc)
            return
        peer = peers[0]
        if not server._check_peers(message, client, auth, alloc, peers):
            return
        if peer in alloc.tcp_peers:
            server._error(
                message,
                client,
                auth,
                ErrorCode.CONNECTION_ALREADY_EXISTS,
                "connection-exists",
                alloc=alloc,
            )
            return
        if len(alloc.tcp_peers) >= MAX_CONNECTIONS:
            server._error(
                message,
                client,
                auth,
                ErrorCode.INSUFFICIENT_CAPACITY,
                "connection-quota",
                alloc=alloc,
            )
            return
        handle = alloc.handle_for(peer[0])
        assert handle is not None  # check_peers made sure
        conn = TcpConnection(
            self._new_id(),
            alloc,
            peer,
            TcpState.CONNECTING,
            now + CONNECT_TIMEOUT,
            request=message,
            auth=auth,
        )
        self._add(conn)
        relay = alloc.relays[IPV6 if ":" in peer[0] else IPV4]
        server._actions.append(
            ConnectPeer(connection=conn.id, listener=handle, relay=relay, peer=peer)
        )

    def peer_connected(self, connection_id: int, now: float) -> bool:
        """The adapter's connection to the peer is up: answer the Connect with the
        CONNECTION-ID. False when nobody waits for it any more (the adapter closes it)."""
        conn = self.connections.get(connection_id)
        if conn is None or conn.state is not TcpState.CONNECTING:
            return False
        assert conn.request is not None
        assert conn.auth is not None
        conn.state = TcpState.PENDING
        conn.deadline = now + BIND_TIMEOUT
        self._server._schedule_tcp(conn)
        builder = MessageBuilder.response_to(conn.request)
        builder.add_u32(AttributeType.CONNECTION_ID, conn.id)
        self._server._send(builder, conn.alloc.client, conn.auth, alloc=conn.alloc)
        conn.request = None
        return True

    def peer_connect_failed(self, connection_id: int) -> None:
        """The connection to the peer was refused or failed: 447."""
        conn = self.connections.get(connection_id)
        if conn is not None and conn.state is TcpState.CONNECTING:
            self._fail_connect(conn)

    def _fail_connect(self, conn: TcpConnection[H]) -> None:
        assert conn.request is not None
        assert conn.auth is not None
        self._server._error(
            conn.request,
            conn.alloc.client,
            conn.auth,
            ErrorCode.CONNECTION_TIMEOUT_OR_FAILURE,
            "connect-failed",
            alloc=conn.alloc,
        )
        self.close(conn)

    # -- peer-initiated (RFC 6062 §5.3) ------------------------------------------------

    def peer_accepted(self, alloc: Allocation[H], peer: Address, now: float) -> int | None:
        """A peer connected to `alloc`'s relayed address: its CONNECTION-ID once the client
        has been told with a ConnectionAttempt indication, or None: close it at once
        (no permission for that peer, or too many connections)."""
        server = self._server
        if alloc.dead or not alloc.tcp or peer[0] not in alloc.permissions:
            server.stats.refusals["tcp-no-permission"] += 1
            return None
        if peer in alloc.tcp_peers or len(alloc.tcp_peers) >= MAX_CONNECTIONS:
            server.stats.refusals["connection-quota"] += 1
            return None
        conn = TcpConnection(self._new_id(), alloc, peer, TcpState.PENDING, now + BIND_TIMEOUT)
        self._add(conn)
        builder = MessageBuilder(Method.CONNECTION_ATTEMPT, MessageClass.INDICATION)
        builder.add_xor_address(AttributeType.XOR_PEER_ADDRESS, peer)
        builder.add_u32(AttributeType.CONNECTION_ID, conn.id)
        server._actions.append(ToClient(alloc.client, builder.encode()))
        return conn.id

    def peer_closed(self, connection_id: int) -> None:
        """The adapter saw the peer connection end (it closes the client side itself)."""
        conn = self.connections.get(connection_id)
        if conn is not None:
            if conn.state is TcpState.CONNECTING:
                self._fail_connect(conn)
            else:
                self._forget(conn)

    # -- ConnectionBind (RFC 6062 §5.4) ------------------------------------------------

    def connection_bind(
        self, message: Message, client: ClientKey, auth: Authenticated, now: float
    ) -> None:
        server = self._server
        value = message.get(AttributeType.CONNECTION_ID)
        conn = self.connections.get(int.from_bytes(value)) if value and len(value) == 4 else None
        if (
            client[0] == "udp"
            or conn is None
            or conn.state is not TcpState.PENDING
            or server.allocation(client) is not None
            or client in self._by_data_client
        ):
            server._error(message, client, auth, ErrorCode.BAD_REQUEST, "bad-connection-bind")
            return
        if conn.alloc.username != auth.username:
            server._error(message, client, auth, ErrorCode.WRONG_CREDENTIALS, "wrong-credentials")
            return
        conn.state = TcpState.BOUND
        conn.data_client = client
        self._by_data_client[client] = conn.id
        server._send(MessageBuilder.response_to(message), client, auth)
        server._actions.append(BindData(conn.id, client))

    def charge(self, connection_id: int, n: int, now: float) -> float:
        """`n` bytes a bound connection relayed, charged to its allocation's byte budget
        (the same one-second bucket as UDP's): how long to stop reading so that the
        budget holds, 0 when it does. A stream cannot drop bytes, so it owes them."""
        rate = self._server._bandwidth
        conn = self.connections.get(connection_id)
        if not rate or conn is None:
            return 0.0
        alloc = conn.alloc
        tokens = min(alloc.tokens + (now - alloc.bucket_stamp) * rate, rate) - n
        alloc.tokens = tokens
        alloc.bucket_stamp = now
        return 0.0 if tokens >= 0 else -tokens / rate

    def is_data_client(self, client: ClientKey) -> bool:
        """True for a client connection spliced to a peer (it carries no STUN any more)."""
        return client in self._by_data_client

    def client_closed(self, client: ClientKey) -> None:
        """A client data connection closed: its peer connection goes with it."""
        connection_id = self._by_data_client.get(client)
        if connection_id is not None:
            self.close(self.connections[connection_id])

    # -- lifetime ------------------------------------------------------------------------

    def allocation_deleted(self, alloc: Allocation[H]) -> None:
        for connection_id in list(alloc.tcp_peers.values()):
            conn = self.connections.get(connection_id)
            if conn is not None:
                self.close(conn)

    def timer(self, connection_id: int, now: float) -> None:
        """A Connect or bind deadline came up (the heap may hold stale ones)."""
        conn = self.connections.get(connection_id)
        if conn is None or conn.deadline > now or conn.state is TcpState.BOUND:
            return
        if conn.state is TcpState.CONNECTING:
            self._fail_connect(conn)
        else:
            self.close(conn)
