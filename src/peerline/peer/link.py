"""From nothing to a pinned QUIC session with the peer: gather, signal, ICE, QUIC.

The same steps whichever way the descriptions travel (`signal.py`): the offerer
gathers every candidate first (half trickle: a pasted blob cannot trickle), sends
its offer and waits for the answer; the answerer gathers while it waits for the
offer. The offerer controls ICE and is the QUIC client.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from peerline.errors import PeerlineError
from peerline.ice.aio import IceTransport
from peerline.ice.config import Role
from peerline.ice.description import parse_description
from peerline.ice.gather import IceTransportConfig
from peerline.peer.description import Kind, PeerDescription
from peerline.peer.signal import Receive, Send, SignalTimeoutError
from peerline.session.config import SessionConfig, SessionRole
from peerline.session.errors import SessionClosed
from peerline.session.identity import Identity
from peerline.session.path import PathInfo
from peerline.session.quic import PeerSession


class ConnectError(PeerlineError):
    """ICE found no path, or the session could not be set up on it, in time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """How one side connects.

    - `connect_timeout`: seconds from having both descriptions to a QUIC session.
    - `wait_for_peer`: extra seconds the answerer allows for its answer to reach
      the offerer (a person pasting it); the offerer starts its checks only then.
    """

    ice: IceTransportConfig = field(default_factory=IceTransportConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    connect_timeout: float = 30.0
    wait_for_peer: float = 0.0
    signal_timeout: float = 600.0


@dataclass(slots=True, kw_only=True)
class Timings:
    """Seconds, on the loop's clock, from the start of `establish`."""

    gathered: float = 0.0
    signalled: float = 0.0
    """Both descriptions known here (for the offerer: the answer arrived)."""
    session_connected: float = 0.0

    @property
    def setup(self) -> float:
        """From having both descriptions to the QUIC session, what a person waits."""
        return self.session_connected - self.signalled


@dataclass(slots=True, kw_only=True)
class Link:
    """An established connection to one peer."""

    kind: Kind
    ice: IceTransport
    session: PeerSession
    path: PathInfo
    timings: Timings

    async def close(self) -> None:
        try:
            await self.session.close()
        finally:
            await self.ice.close()


async def establish(
    config: LinkConfig, kind: Kind, send: Send, receive: Receive, identity: Identity
) -> Link:
    """Connect as the offerer or the answerer; `ConnectError` in one line if it cannot."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    timings = Timings()
    role = Role.CONTROLLING if kind is Kind.OFFER else Role.CONTROLLED
    ice = IceTransport(config.ice, role=role, name=kind.value)
    try:
        await ice.start()
        gather_limit = config.ice.stun_timeout + config.ice.turn_timeout + 5.0
        if kind is Kind.OFFER:
            await _gathered(ice, gather_limit)
            timings.gathered = loop.time() - started
            await send(_describe(kind, identity, ice))
            keeper = asyncio.create_task(_keep_bindings(ice))
            try:
                remote = await _receive(receive, Kind.ANSWER, config.signal_timeout)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper  # owned: an error of its own surfaces here
        else:
            remote = await _receive(receive, Kind.OFFER, config.signal_timeout)
            await _gathered(ice, gather_limit)
            timings.gathered = loop.time() - started
        timings.signalled = loop.time() - started
        session = PeerSession(
            ice,
            role=SessionRole.for_ice(controlling=kind is Kind.OFFER),
            identity=identity,
            peer_fingerprint=remote.fingerprint,
            config=config.session,
        )
        ice.listener = session
        ice.set_remote_description(_held_back(remote, config))
        if kind is Kind.ANSWER:
            await send(_describe(kind, identity, ice))
        limit = config.connect_timeout + (config.wait_for_peer if kind is Kind.ANSWER else 0.0)
        try:
            path = await ice.connected(limit)
        except TimeoutError:
            raise ConnectError(f"no path to the peer within {limit:g} s") from None
        try:
            await session.connect(config.connect_timeout)
        except SessionClosed as error:
            raise ConnectError(f"the session did not open: {error}") from None
        timings.session_connected = loop.time() - started
    except BaseException:
        await ice.close()
        raise
    return Link(kind=kind, ice=ice, session=session, path=path, timings=timings)


async def _gathered(ice: IceTransport, limit: float) -> None:
    try:
        await ice.gathered(limit)
    except TimeoutError:
        raise ConnectError(f"gathering candidates took more than {limit:g} s") from None


async def _receive(receive: Receive, kind: Kind, timeout: float) -> PeerDescription:
    """The peer's description, however it travels; the one bound on waiting for it."""
    try:
        return await asyncio.wait_for(receive(kind), timeout)
    except TimeoutError:
        raise SignalTimeoutError(f"no {kind.value} came within {timeout:g} s") from None


BINDING_REFRESH_S = 15.0
"""How often the offerer refreshes its NAT bindings while it waits for the answer."""


async def _keep_bindings(ice: IceTransport) -> None:
    """While a person carries the answer back, keep the offer's addresses valid."""
    while True:
        await asyncio.sleep(BINDING_REFRESH_S)
        ice.refresh_bindings()


def _describe(kind: Kind, identity: Identity, ice: IceTransport) -> PeerDescription:
    return PeerDescription(kind=kind, fingerprint=identity.fingerprint, ice=ice.local_description())


def _held_back(remote: PeerDescription, config: LinkConfig) -> str:
    """The peer's ICE text, minus end-of-candidates while a person relays our answer.

    Until the offerer has the answer, every check we send fails; with the peer's
    end-of-candidates applied the checklist would then fail for good before the
    offerer's first check arrives. Without it the checklist stays open, the
    offerer's checks revive the pairs, and `wait_for_peer` bounds the wait.
    """
    if remote.kind is not Kind.OFFER or config.wait_for_peer <= 0:
        return remote.ice
    parse_description(remote.ice)  # a broken offer is refused here, with its line
    kept = [line for line in remote.ice.splitlines() if "end-of-candidates" not in line]
    return "\n".join(kept) + "\n"
