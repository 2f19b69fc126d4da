"""A `DatagramPath` over one UDP socket to one known address, for peers that need no ICE.

ICE is how peers behind NATs find a path; when the peer's address is already
known (the same host, a LAN, the self-test, the tests) this is the whole path:
one socket, one remote address, and datagrams from anyone else ignored, as an
ICE pair would ignore them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from peerline.net import Address, format_address
from peerline.session.path import PathInfo, PathListener

log = logging.getLogger(__name__)


class UdpPath(asyncio.DatagramProtocol):
    """Datagrams to and from one remote UDP address; hand it a `listener` to feed."""

    def __init__(self) -> None:
        self.listener: PathListener | None = None
        self.remote: Address | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._local: Address | None = None

    @classmethod
    async def open(
        cls, local: Address = ("127.0.0.1", 0), remote: Address | None = None
    ) -> UdpPath:
        """Bind a socket at `local` (port 0: any); `remote` may be set later."""
        loop = asyncio.get_running_loop()
        _, path = await loop.create_datagram_endpoint(cls, local_addr=local)
        path.remote = remote
        return path

    @property
    def local(self) -> Address:
        if self._local is None:
            raise RuntimeError("the UDP path is not open")
        return self._local

    # -- asyncio.DatagramProtocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass
        self._local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.listener is not None and self.remote is not None and addr[:2] == self.remote:
            self.listener.datagram_received(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP path %s: %s", self._local, exc)  # e.g. ICMP port unreachable

    # -- DatagramPath -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self._transport is not None and self.remote is not None:
            self._transport.sendto(data, self.remote)

    def describe(self) -> PathInfo | None:
        if self._local is None or self.remote is None:
            return None
        return PathInfo(
            local_type="host",
            remote_type="host",
            local_address=format_address(self._local),
            remote_address=format_address(self.remote),
            relayed=False,
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


async def loopback_pair() -> tuple[UdpPath, UdpPath]:
    """Two paths on 127.0.0.1 that reach each other (for the self-test and tests)."""
    a, b = await UdpPath.open(), await UdpPath.open()
    a.remote, b.remote = b.local, a.local
    return a, b
