"""A thin asyncio adapter for STUN clients: UDP sockets that run client transactions.

Several sockets share one table of pending transactions, because RFC 5780
probes send a request from one socket and expect the answer on another
(RESPONSE-PORT), or expect their own request back (hairpinning). All timing
comes from the sans-IO `ClientTransaction`; this file only moves bytes.
"""

import asyncio
import socket
from typing import cast

from peerline.net import Address
from peerline.stun.constants import MessageClass
from peerline.stun.errors import MalformedMessage
from peerline.stun.message import Message, is_stun, parse
from peerline.stun.transaction import (
    ClientTransaction,
    ResponseReceived,
    TransactionConfig,
    TransactionResult,
    Transport,
)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, hub: "StunClientHub", index: int) -> None:
        self._hub = hub
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._hub.received(data, self.index, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable) just mean no answer; retransmission decides."""


class StunClientHub:
    """A set of client UDP sockets with one table of transactions in flight."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._endpoints: list[_Endpoint] = []
        self._pending: dict[bytes, tuple[ClientTransaction, asyncio.Future[None]]] = {}
        #: Callers waiting for a message outside any transaction (our own request
        #: coming back, an answer sent to another socket), by transaction id.
        self._waiters: dict[bytes, asyncio.Future[tuple[int, Message]]] = {}

    async def open(self, local: Address) -> int:
        """Bind a new socket (port 0 = any) and return its index."""
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        index = len(self._endpoints)
        _, endpoint = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(self, index), local_addr=local, family=family
        )
        self._endpoints.append(endpoint)
        return index

    def local_address(self, index: int) -> Address:
        transport = self._endpoints[index].transport
        assert transport is not None
        name = transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    def received(self, data: bytes, index: int, source: Address) -> None:
        if not is_stun(data):
            return
        try:
            message = parse(data)
        except MalformedMessage:
            return
        tid = message.transaction_id
        waiter = self._waiters.get(tid)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result((index, message))
            return
        pending = self._pending.get(tid)
        if pending is None or message.message_class is MessageClass.REQUEST:
            return
        transaction, future = pending
        if transaction.handle_response(message, self._loop.time()) and not future.done():
            future.set_result(None)

    def send(self, index: int, data: bytes, destination: Address) -> None:
        transport = self._endpoints[index].transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, destination)

    async def request(
        self, index: int, request: bytes, destination: Address, config: TransactionConfig
    ) -> TransactionResult:
        """Run one transaction from socket `index`; the answer may land on any socket."""
        loop = self._loop
        transaction = ClientTransaction(
            request, transport=Transport.UDP, now=loop.time(), config=config
        )
        future: asyncio.Future[None] = loop.create_future()
        self._pending[transaction.transaction_id] = (transaction, future)
        try:
            while not transaction.done:
                transaction.handle_timer(loop.time())
                for datagram in transaction.datagrams_to_send(loop.time()):
                    self.send(index, datagram, destination)
                deadline = transaction.get_timer()
                if deadline is None:
                    break
                try:
                    await asyncio.wait_for(
                        asyncio.shield(future), timeout=max(0.0, deadline - loop.time())
                    )
                except TimeoutError:
                    continue
        finally:
            self._pending.pop(transaction.transaction_id, None)
        assert transaction.result is not None
        return transaction.result

    def expect(self, transaction_id: bytes) -> "asyncio.Future[tuple[int, Message]]":
        """A future for the first message with this id, outside any transaction.

        It resolves to (socket index, message). Register it before sending, and
        call `forget` when done waiting.
        """
        waiter: asyncio.Future[tuple[int, Message]] = self._loop.create_future()
        self._waiters[transaction_id] = waiter
        return waiter

    def forget(self, transaction_id: bytes) -> None:
        waiter = self._waiters.pop(transaction_id, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def close(self) -> None:
        for endpoint in self._endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()


def response_of(result: TransactionResult) -> Message | None:
    """The response message of a transaction that got one, else None."""
    return result.message if isinstance(result, ResponseReceived) else None
