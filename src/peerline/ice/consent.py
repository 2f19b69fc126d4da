"""Consent freshness (RFC 7675) and keepalives (RFC 8445 §11) of the selected pairs.

Which pair carries each component's data, until when the peer's consent holds,
and when the next consent request (or, with consent off, Binding indication) is
due. Pure bookkeeping over `now`; the agent sends the requests and feeds back
the answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from peerline.ice.checklist import CandidatePair
from peerline.ice.config import IceConfig
from peerline.ice.generation import Generation
from peerline.stun import TransactionConfig


def consent_transaction(config: IceConfig) -> TransactionConfig:
    """A consent request is sent 3 times (0, RTO, 3·RTO) and given up after 4·RTO
    more: with the default RTO it ends at 3.5 s, before the next one (>= 4 s) goes."""
    return TransactionConfig(rto=config.check_rto, rc=3, rm=4)


@dataclass(slots=True, eq=False)
class Selection:
    """The pair application data uses for one component, and its consent."""

    generation: Generation
    pair: CandidatePair
    consent_until: float
    next_check_at: float


class Consent:
    """The selected pair of each component and its consent deadlines."""

    def __init__(self, config: IceConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self.selected: dict[int, Selection] = {}

    def interval(self) -> float:
        """RFC 7675 §5.1: 0.8-1.2 × the consent interval, so that peers do not beat
        in step; with consent off, the keepalive interval."""
        if not self._config.consent_freshness:
            return self._config.keepalive_interval
        return self._config.consent_interval * self._rng.uniform(0.8, 1.2)

    def select(self, generation: Generation, pair: CandidatePair, now: float) -> None:
        """`pair` carries its component from now on; its consent runs from the
        first send of the check that proved it (or `now`)."""
        confirmed = now if pair.confirmed_at is None else pair.confirmed_at
        self.selected[pair.component] = Selection(
            generation=generation,
            pair=pair,
            consent_until=confirmed + self._config.consent_timeout,
            next_check_at=now + self.interval(),
        )

    def granted(self, pair: CandidatePair, sent_at: float) -> None:
        """RFC 7675 §5.1: an answer to a request first sent at `sent_at` grants
        consent for the consent timeout from then."""
        selection = self.selected.get(pair.component)
        if selection is not None and selection.pair is pair:
            until = sent_at + self._config.consent_timeout
            selection.consent_until = max(selection.consent_until, until)

    def due(self, now: float) -> tuple[list[Selection], list[Selection]]:
        """The selections whose consent ran out (no longer selected), and those
        that need a consent request or keepalive now (rescheduled)."""
        lost, probe = [], []
        for component, selection in list(self.selected.items()):
            if self._config.consent_freshness and now >= selection.consent_until:
                del self.selected[component]
                lost.append(selection)
            elif now >= selection.next_check_at:
                selection.next_check_at = now + self.interval()
                probe.append(selection)
        return lost, probe

    def deadlines(self) -> list[float]:
        times = []
        for selection in self.selected.values():
            times.append(selection.next_check_at)
            if self._config.consent_freshness:
                times.append(selection.consent_until)
        return times
