"""The ICE agent against hostile input: any bytes give a Disposition and never an
exception; a flood of garbage and of well-formed checks with wrong credentials
leaves its state as it was (nothing learned, nothing queued, no new timers)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerline.ice.agent import Agent, Disposition
from peerline.ice.candidate import Candidate
from peerline.ice.config import Role
from peerline.ice.messages import build_check
from peerline.stun import (
    MAGIC_COOKIE,
    AttributeType,
    MalformedMessage,
    MessageBuilder,
    MessageClass,
    Method,
    TransportAddress,
    parse,
    short_term_key,
)
from tests.unit.test_ice_agent import A_HOST, B_HOST
from tests.unit.test_ice_agent_checks import A_CREDS, B_CREDS, answering_agent

SOURCE = TransportAddress("10.0.1.2", 5000)


def running_agent() -> Agent:
    """An agent in the middle of its checks, so that every code path is live."""
    agent = answering_agent()
    agent.add_remote_candidate(Candidate.host(A_HOST))
    agent.handle_timer(0.0)
    agent.datagrams_to_send(0.0)
    return agent


_HEADER = MAGIC_COOKIE.to_bytes(4, "big")

stun_like = st.builds(
    lambda kind, length, tid, body: (
        kind.to_bytes(2, "big") + length.to_bytes(2, "big") + _HEADER + tid + body
    ),
    st.sampled_from([0x0001, 0x0011, 0x0101, 0x0111, 0x0003, 0x0004]) | st.integers(0, 0x3FFF),
    st.integers(0, 0xFFFF),
    st.binary(min_size=12, max_size=12),
    st.binary(max_size=120),
)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=200) | stun_like)
def test_any_bytes_give_a_disposition(data: bytes) -> None:
    agent = running_agent()
    disposition = agent.receive_datagram(data, B_HOST, SOURCE, 0.01)
    assert isinstance(disposition, Disposition)
    agent.handle_timer(0.02)
    agent.datagrams_to_send(0.02)


@settings(max_examples=200, deadline=None)
@given(
    username=st.text(max_size=40),
    priority=st.integers(0, 2**32 - 1),
    controlling=st.none() | st.integers(0, 2**64 - 1),
    controlled=st.none() | st.integers(0, 2**64 - 1),
    use_candidate=st.booleans(),
    key=st.sampled_from([b"", short_term_key(B_CREDS.pwd), b"wrong"]),
    extra=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12)), max_size=3),
)
def test_any_binding_request_is_answered_or_dropped_never_raises(
    username: str,
    priority: int,
    controlling: int | None,
    controlled: int | None,
    use_candidate: bool,
    key: bytes,
    extra: list[tuple[int, bytes]],
) -> None:
    builder = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
    builder.add_text(AttributeType.USERNAME, username)
    builder.add_u32(AttributeType.PRIORITY, priority)
    if controlling is not None:
        builder.add_u64(AttributeType.ICE_CONTROLLING, controlling)
    if controlled is not None:
        builder.add_u64(AttributeType.ICE_CONTROLLED, controlled)
    if use_candidate:
        builder.add(AttributeType.USE_CANDIDATE)
    for attr_type, value in extra:
        if attr_type not in (AttributeType.MESSAGE_INTEGRITY, AttributeType.FINGERPRINT):
            builder.add(attr_type, value)
    data = builder.encode(integrity_key=key or None, fingerprint=True)
    agent = running_agent()
    disposition = agent.receive_datagram(data, B_HOST, SOURCE, 0.01)
    try:
        parse(data)
    except MalformedMessage:  # an extra attribute broke it: not STUN, passed on
        assert disposition is Disposition.NOT_ICE
        return
    assert disposition is Disposition.CONSUMED
    answers = agent.datagrams_to_send(0.01)
    assert len([t for t in answers if t.destination == SOURCE]) <= 2  # an answer, a check


def state_of(agent: Agent) -> tuple[object, ...]:
    return (
        agent.remote_candidates,
        agent.pairs(),
        agent.get_timer(),
        agent.role,
        agent.checklist_state,
        agent.selected_pair(),
    )


def test_a_flood_of_garbage_and_wrong_credentials_changes_nothing() -> None:
    agent = running_agent()
    before = state_of(agent)
    rng = random.Random(4)
    answers = 0
    for n in range(20_000):
        source = TransportAddress(f"10.{rng.randrange(256)}.{rng.randrange(256)}.9", 1024 + n)
        kind = n % 4
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 120))
        elif kind == 1:  # STUN-looking, truncated or inconsistent
            data = b"\x00\x01" + rng.randbytes(2) + _HEADER + rng.randbytes(rng.randrange(12, 60))
        elif kind == 2:  # a well-formed check with the wrong password
            data = build_check(
                username=f"{B_CREDS.ufrag}:{A_CREDS.ufrag}",
                key=short_term_key("w" * 22),
                priority=rng.randrange(1, 2**31),
                role=Role.CONTROLLING,
                tie_breaker=rng.randrange(2**64),
                use_candidate=bool(n & 8),
            )
        else:  # the right password for an ufrag we never had
            data = build_check(
                username=f"zz{n}:{A_CREDS.ufrag}",
                key=short_term_key(B_CREDS.pwd),
                priority=rng.randrange(1, 2**31),
                role=Role.CONTROLLED,
                tie_breaker=rng.randrange(2**64),
                use_candidate=False,
            )
        assert isinstance(agent.receive_datagram(data, B_HOST, source, 0.01), Disposition)
        answers += len(agent.datagrams_to_send(0.01))
    assert state_of(agent) == before
    assert answers <= 10_000  # at most one (unsigned) error per bad check, nothing else
    # still works: a real check is answered and learned from
    good = build_check(
        username=f"{B_CREDS.ufrag}:{A_CREDS.ufrag}",
        key=short_term_key(B_CREDS.pwd),
        priority=1,
        role=Role.CONTROLLING,
        tie_breaker=1,
        use_candidate=False,
    )
    assert agent.receive_datagram(good, B_HOST, SOURCE, 0.02) is Disposition.CONSUMED
    assert SOURCE in [c.address for c in agent.remote_candidates]
