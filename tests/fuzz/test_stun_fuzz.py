"""A bounded, seeded fuzz run of the STUN parser (the long run: stun_fuzz.py)."""

import time

from tests.fuzz.stun_fuzz import run


def test_100k_mutated_inputs_parse_or_raise_malformed() -> None:
    """100,000 inputs; only MalformedMessage may stop a parse (STYLE practice 7)."""
    start = time.perf_counter()
    parsed = run(100_000, seed=5769)
    assert 0 < parsed < 100_000  # the mutations reach both outcomes
    assert time.perf_counter() - start < 30
