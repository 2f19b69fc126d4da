"""NAT profiles and link shaping as users write them: `PROFILE[,hairpin][,udp-timeout=S]`.

Pure data and parsing, so every mistake a user can type is caught (and unit-tested)
before anything touches the kernel.
"""

from dataclasses import dataclass
from enum import StrEnum

from peerline.errors import UsageError
from peerline.nat.classify import Behaviour


class Profile(StrEnum):
    """How a lab NAT maps and filters UDP (RFC 4787 terms in `mapping`/`filtering`)."""

    NONE = "none"
    FULL_CONE = "full-cone"
    RESTRICTED_CONE = "restricted-cone"
    PORT_RESTRICTED_CONE = "port-restricted-cone"
    SYMMETRIC = "symmetric"

    @property
    def mapping(self) -> Behaviour | None:
        """The mapping behaviour this profile promises; None when there is no NAT."""
        if self is Profile.NONE:
            return None
        if self is Profile.SYMMETRIC:
            return Behaviour.ADDRESS_AND_PORT_DEPENDENT
        return Behaviour.ENDPOINT_INDEPENDENT

    @property
    def filtering(self) -> Behaviour | None:
        """The filtering behaviour this profile promises; None when there is no NAT."""
        return _FILTERING[self]

    @property
    def summary(self) -> str:
        """One line for tables: mapping and filtering in RFC 4787 words."""
        if self is Profile.NONE:
            return "no NAT: the host sits on the public segment itself"
        mapping = "random port per destination" if self is Profile.SYMMETRIC else "port-preserving"
        return f"{self.mapping} mapping ({mapping}), {self.filtering} filtering"


_FILTERING: dict[Profile, Behaviour | None] = {
    Profile.NONE: None,
    Profile.FULL_CONE: Behaviour.ENDPOINT_INDEPENDENT,
    Profile.RESTRICTED_CONE: Behaviour.ADDRESS_DEPENDENT,
    Profile.PORT_RESTRICTED_CONE: Behaviour.ADDRESS_AND_PORT_DEPENDENT,
    Profile.SYMMETRIC: Behaviour.ADDRESS_AND_PORT_DEPENDENT,
}

#: Longest binding timeout we accept; beyond a day nobody is testing timeouts any more.
MAX_UDP_TIMEOUT_S = 86_400


def parse_profile(text: str) -> Profile:
    """A profile by its exact name, or a `UsageError` that lists the names."""
    try:
        return Profile(text.strip())
    except ValueError:
        names = ", ".join(profile.value for profile in Profile)
        raise UsageError(f"unknown NAT profile {text.strip()!r} (profiles: {names})") from None


@dataclass(frozen=True, slots=True)
class NatSpec:
    """One NAT as asked for: a profile plus its modifiers."""

    profile: Profile
    #: Packets from the LAN to the NAT's public address are looped back to the inside.
    hairpin: bool = False
    #: UDP binding timeout in seconds; None keeps the kernel's (30 s unreplied, 120 s stream).
    udp_timeout: int | None = None

    def __post_init__(self) -> None:
        if self.profile is Profile.NONE and (self.hairpin or self.udp_timeout is not None):
            raise UsageError("'none' means no NAT, so it takes no hairpin or udp-timeout")
        if self.udp_timeout is not None and not 1 <= self.udp_timeout <= MAX_UDP_TIMEOUT_S:
            raise UsageError(f"udp-timeout must be 1-{MAX_UDP_TIMEOUT_S} seconds")

    @property
    def is_nat(self) -> bool:
        return self.profile is not Profile.NONE

    def __str__(self) -> str:
        """The spelling `parse_nat` reads back."""
        parts = [self.profile.value]
        if self.hairpin:
            parts.append("hairpin")
        if self.udp_timeout is not None:
            parts.append(f"udp-timeout={self.udp_timeout}")
        return ",".join(parts)


def parse_nat(text: str) -> NatSpec:
    """`PROFILE[,hairpin][,udp-timeout=SECONDS]` -> NatSpec, or one clear `UsageError`."""
    profile_text, *modifiers = [part.strip() for part in text.split(",")]
    profile = parse_profile(profile_text)
    hairpin = False
    udp_timeout: int | None = None
    for modifier in modifiers:
        name, sep, value = modifier.partition("=")
        if name == "hairpin" and not sep:
            hairpin = True
        elif name == "udp-timeout" and sep:
            udp_timeout = _parse_int(value, "udp-timeout")
        else:
            raise UsageError(
                f"unknown NAT modifier {modifier!r} in {text!r} "
                "(modifiers: hairpin, udp-timeout=SECONDS)"
            )
    return NatSpec(profile, hairpin=hairpin, udp_timeout=udp_timeout)


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number of seconds, not {text!r}") from None


@dataclass(frozen=True, slots=True)
class LinkShape:
    """Impairments of one link, applied to each direction separately.

    `delay_ms` is added one way in each direction (by a delay line in the host that
    owns the link, see `shaping`; no netem needed), `loss_percent` drops that share of
    the packets in each direction, `rate_mbit` caps each direction.
    """

    delay_ms: float = 0.0
    loss_percent: float = 0.0
    rate_mbit: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms <= 60_000:
            raise UsageError(f"delay must be 0-60000 ms, not {self.delay_ms:g}")
        if not 0 <= self.loss_percent <= 100:
            raise UsageError(f"loss must be 0-100 percent, not {self.loss_percent:g}")
        if not 0 <= self.rate_mbit <= 100_000:
            raise UsageError(f"rate must be 0-100000 Mbit/s, not {self.rate_mbit:g}")

    @property
    def is_shaped(self) -> bool:
        return bool(self.delay_ms or self.loss_percent or self.rate_mbit)

    def __str__(self) -> str:
        parts = []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g} ms")
        if self.loss_percent:
            parts.append(f"loss {self.loss_percent:g}%")
        if self.rate_mbit:
            parts.append(f"rate {self.rate_mbit:g} Mbit/s")
        return ", ".join(parts) or "unshaped"
