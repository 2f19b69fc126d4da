"""The errors `peerline.ice` raises on purpose.

`MalformedAttribute` is the only exception the SDP attribute parser lets out, so
a caller reading an offer can skip (or refuse) a bad line with one `except`.
`IceUsageError` is our own mistake (h11's LocalProtocolError): the agent was
asked for something its state does not allow. `InvalidTransition` is the
transition tables refusing a (state, input) pair they do not list.
"""

from __future__ import annotations

from enum import Enum

from peerline.errors import PeerlineError


class IceError(PeerlineError):
    """Base of every ICE error."""


class MalformedAttribute(IceError):  # noqa: N818 (the name the project uses for parse errors)
    """An ICE SDP attribute (RFC 8839 §5) that does not follow the grammar."""


class IceUsageError(IceError, ValueError):
    """The agent was called with arguments or at a time that make no sense."""


class InvalidTransition(IceError):  # noqa: N818 (an event name, like h2's)
    """A state machine was fed an input its transition table has no entry for."""

    def __init__(self, state: Enum, event: Enum) -> None:
        super().__init__(f"no transition from {state.name} on {event.name}")
        self.state = state
        self.event = event
