"""The STUN side of ICE: connectivity checks, their answers, and what a request must
pass before the agent believes it (RFC 8445 §7.1-7.3, RFC 8489 §9.1.3).

Pure functions over `peerline.stun`: the agent decides what to send, this file
knows how it looks on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from peerline.ice.config import Role
from peerline.ice.errors import IceError
from peerline.stun import (
    AttributeType,
    ErrorCode,
    MalformedMessage,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportAddress,
    binding_success,
    comprehension_required_unknown,
    short_term_key,
    verify_message_integrity,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRequest:
    """A Binding request that passed authentication: what the peer told us."""

    local_ufrag: str
    remote_ufrag: str
    priority: int
    ice_controlling: int | None
    ice_controlled: int | None
    use_candidate: bool


class CheckRejected(IceError):  # noqa: N818 (says what happened, like h2's)
    """A request we answer with an error (400, 401, 420), carrying the code.

    `key` signs the answer when the request itself was authenticated (RFC 8489
    §9.1.3: answers to unauthenticated requests carry no MESSAGE-INTEGRITY).
    """

    def __init__(
        self, code: ErrorCode, *, key: bytes | None = None, unknown: tuple[int, ...] = ()
    ) -> None:
        super().__init__(f"check rejected with {int(code)} {code.reason}")
        self.error_code = code
        self.key = key
        self.unknown = unknown


def build_check(
    *,
    username: str,
    key: bytes,
    priority: int,
    role: Role,
    tie_breaker: int,
    use_candidate: bool,
) -> bytes:
    """A connectivity check or consent request (RFC 8445 §7.1, RFC 7675 §5.1):
    USERNAME `rufrag:lufrag`, PRIORITY, the role with our tie-breaker, maybe
    USE-CANDIDATE, then MESSAGE-INTEGRITY with the peer's password and FINGERPRINT."""
    builder = MessageBuilder(Method.BINDING, MessageClass.REQUEST)
    builder.add_text(AttributeType.USERNAME, username)
    builder.add_u32(AttributeType.PRIORITY, priority)
    if role is Role.CONTROLLING:
        builder.add_u64(AttributeType.ICE_CONTROLLING, tie_breaker)
    else:
        builder.add_u64(AttributeType.ICE_CONTROLLED, tie_breaker)
    if use_candidate:
        builder.add(AttributeType.USE_CANDIDATE)
    return builder.encode(integrity_key=key, fingerprint=True)


def read_check(
    message: Message, password_for: Callable[[str, str], str | None]
) -> tuple[CheckRequest, bytes]:
    """Authenticate a Binding request and read its ICE attributes.

    `password_for(local_ufrag, remote_ufrag)` returns our password for that
    USERNAME, or None when it names no session of ours. Returns the request and
    the key to sign the answer with; raises `CheckRejected` otherwise.
    """
    try:
        username = message.username
    except MalformedMessage:
        raise CheckRejected(ErrorCode.BAD_REQUEST) from None
    if username is None or AttributeType.MESSAGE_INTEGRITY not in message:
        raise CheckRejected(ErrorCode.BAD_REQUEST)
    local_ufrag, colon, remote_ufrag = username.partition(":")
    password = password_for(local_ufrag, remote_ufrag) if colon else None
    if password is None:
        raise CheckRejected(ErrorCode.UNAUTHENTICATED)
    key = short_term_key(password)
    if not verify_message_integrity(message, key):
        raise CheckRejected(ErrorCode.UNAUTHENTICATED)
    unknown = comprehension_required_unknown(message)
    if unknown:
        raise CheckRejected(ErrorCode.UNKNOWN_ATTRIBUTE, key=key, unknown=tuple(unknown))
    try:
        priority = message.priority
        controlling, controlled = message.ice_controlling, message.ice_controlled
    except MalformedMessage:
        raise CheckRejected(ErrorCode.BAD_REQUEST, key=key) from None
    if not priority or (controlling is not None and controlled is not None):
        raise CheckRejected(ErrorCode.BAD_REQUEST, key=key)
    request = CheckRequest(
        local_ufrag=local_ufrag,
        remote_ufrag=remote_ufrag,
        priority=priority,
        ice_controlling=controlling,
        ice_controlled=controlled,
        use_candidate=message.use_candidate,
    )
    return request, key


def success_response(request: Message, source: tuple[str, int], key: bytes) -> bytes:
    """RFC 8445 §7.3.1.2: XOR-MAPPED-ADDRESS is where the request came from."""
    return binding_success(request.transaction_id, source, integrity_key=key, fingerprint=True)


def answer_mapped(answer: Message) -> TransportAddress | None:
    """The XOR-MAPPED-ADDRESS of a success answer to a check (RFC 8445 §7.2.5.3);
    None for an error, or a success without one (or with a malformed one)."""
    if answer.message_class is not MessageClass.SUCCESS:
        return None
    try:
        return answer.xor_mapped_address
    except MalformedMessage:
        return None


def is_role_conflict(answer: Message) -> bool:
    """A 487 answer (RFC 8445 §7.2.5.1); a malformed ERROR-CODE is no 487."""
    if answer.message_class is not MessageClass.ERROR:
        return False
    try:
        error = answer.error_code
    except MalformedMessage:
        return False
    return error is not None and error.code == ErrorCode.ROLE_CONFLICT


def error_response(
    request: Message, code: ErrorCode, *, key: bytes | None, unknown: tuple[int, ...] = ()
) -> bytes:
    """An error answer; signed when `key` is known, always with FINGERPRINT."""
    builder = MessageBuilder.response_to(request, error=True).add_error_code(code)
    if unknown:
        builder.add_unknown_attributes(list(unknown))
    return builder.encode(integrity_key=key, fingerprint=True)


def keepalive_indication() -> bytes:
    """RFC 8445 §11: a Binding indication refreshes NAT bindings and asks nothing."""
    return MessageBuilder(Method.BINDING, MessageClass.INDICATION).encode(fingerprint=True)
