"""A bounded, seeded fuzz run of the STUN parser (the long run: stun_fuzz.py)."""

from tests.fuzz.stun_fuzz import run


def test_100k_mutated_inputs_parse_or_raise_malformed() -> None:
    """100,000 inputs; only MalformedMessage may stop a parse (STYLE practice 7)."""
    parsed = run(100_000, seed=5769)
    assert 0 < parsed < 100_000  # the mutations reach both outcomes
