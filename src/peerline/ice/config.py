"""The agent's configuration: one validated, frozen dataclass (STYLE practice 8)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from peerline.ice.checklist import DEFAULT_MAX_PAIRS


class Role(Enum):
    """Which agent nominates (RFC 8445 §6.1.1); a role conflict may swap it (§7.3.1.1)."""

    CONTROLLING = "controlling"
    CONTROLLED = "controlled"


class Nomination(Enum):
    """How the controlling agent nominates.

    REGULAR (RFC 8445 §8.1.1) lets checks run, picks the best valid pair, and
    checks it once more with USE-CANDIDATE. AGGRESSIVE is RFC 5245's: every check
    carries USE-CANDIDATE. RFC 8445 agents nominate regularly; AGGRESSIVE is kept
    because old peers use it and our tests act as one.
    """

    REGULAR = "regular"
    AGGRESSIVE = "aggressive"


@dataclass(frozen=True, slots=True, kw_only=True)
class IceConfig:
    """Timers and limits of one ICE agent. Defaults are the RFCs' recommendations.

    - `ta`: pacing, one new check per Ta (RFC 8445 §14.2: 50 ms).
    - `check_rto`, `check_rc`, `check_rm`: the STUN retransmissions of a check;
      the RTO is max(`check_rto`, Ta × pairs Waiting or In-Progress) (RFC 8445
      §14.3), Rc and Rm as in RFC 8489 §6.2.1.
    - `max_pairs`: the checklist limit (RFC 8445 §6.1.2.5: 100); pairs formed by
      the peer's checks count too, and at most half of it may come from
      peer-reflexive candidates learned that way. An extension may raise it for
      one generation (`Agent.add_local_candidate(..., max_pairs=N)`).
    - `nomination` and `nomination_delay`: after the first valid pair of a
      component, how long the controlling agent waits for a better one before it
      nominates the best it has (at once if nothing better is still pending).
    - `consent_interval`, `consent_timeout`: RFC 7675 §5.1, a check every 5 s
      (randomised to 0.8-1.2 ×), consent lost after 30 s without an answer.
      With `consent_freshness` off, Binding indications every
      `keepalive_interval` (RFC 8445 §11: 15 s) keep the NAT bindings instead.
    - `ice_options`: the tokens we advertise (RFC 8839 §5.6); `trickle` (RFC
      8838) and `ice2` (RFC 8445 §10) by default.
    """

    ta: float = 0.05
    check_rto: float = 0.5
    check_rc: int = 7
    check_rm: int = 16
    max_pairs: int = DEFAULT_MAX_PAIRS
    nomination: Nomination = Nomination.REGULAR
    nomination_delay: float = 0.5
    consent_freshness: bool = True
    consent_interval: float = 5.0
    consent_timeout: float = 30.0
    keepalive_interval: float = 15.0
    ice_options: tuple[str, ...] = ("trickle", "ice2")

    def __post_init__(self) -> None:
        positive = {
            "ta": self.ta,
            "check_rto": self.check_rto,
            "consent_interval": self.consent_interval,
            "consent_timeout": self.consent_timeout,
            "keepalive_interval": self.keepalive_interval,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, not {value}")
        if self.check_rc < 1 or self.check_rm < 1 or self.max_pairs < 1:
            raise ValueError("check_rc, check_rm and max_pairs must be >= 1")
        if self.nomination_delay < 0:
            raise ValueError("nomination_delay must be >= 0")
        if self.nomination is Nomination.AGGRESSIVE and "ice2" in self.ice_options:
            raise ValueError(
                "aggressive nomination is RFC 5245's: drop 'ice2' from ice_options "
                "(it tells the peer we nominate one pair at a time, RFC 8445 §10)"
            )
        if self.consent_interval * 1.2 >= self.consent_timeout:
            raise ValueError("consent_timeout must exceed the longest consent interval")
