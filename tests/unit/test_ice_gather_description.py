"""The ICE description peers exchange as text: written, read back, and refused when broken."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.ice.candidate import Candidate
from peerline.ice.description import BadDescription, IceDescription, parse_description
from peerline.ice.sdp import Credentials

CREDENTIALS = Credentials("8hhY", "asd88fgpdd777uzjYhagZg")
HOST = Candidate.host(("192.0.2.2", 40000))
SRFLX = Candidate.server_reflexive(
    ("198.51.100.7", 61000), base=("192.0.2.2", 40000), server=("192.0.2.10", 3478)
)


def test_round_trip() -> None:
    description = IceDescription(
        credentials=CREDENTIALS,
        options=("trickle", "ice2"),
        candidates=(HOST, SRFLX),
        end_of_candidates=True,
    )
    text = description.to_text()
    assert text.splitlines()[0] == "a=ice-ufrag:8hhY"
    assert text.splitlines()[-1] == "a=end-of-candidates"
    assert parse_description(text) == description


def test_sdp_around_it_is_skipped_and_a_is_optional() -> None:
    text = (
        "v=0\r\n"
        "a=fingerprint:sha-256 AB:CD\r\n"
        "\r\n"
        f"ice-ufrag:{CREDENTIALS.ufrag}\r\n"
        f"a=ice-pwd:{CREDENTIALS.pwd}\r\n"
        f"  a={HOST.to_sdp()}  \r\n"
    )
    description = parse_description(text)
    assert description.credentials == CREDENTIALS
    assert description.candidates == (HOST,)
    assert not description.end_of_candidates


def test_candidates_alone_are_a_trickle_update() -> None:
    description = parse_description(f"a={SRFLX.to_sdp()}\na=end-of-candidates\n")
    assert description.credentials is None
    assert description.candidates == (SRFLX,)
    assert description.end_of_candidates


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=ice-ufrag:8hhY\n", "both ice-ufrag and ice-pwd"),
        ("a=ice-ufrag:8hhY\na=ice-pwd:short\n", "line 2"),
        ("a=candidate:1 1 UDP x 1.2.3.4 5 typ host\n", "line 1"),
        ("a=end-of-candidates:now\n", "line 1"),
        ("a=ice-options:\n", "line 1"),
    ],
)
def test_broken_ice_lines_are_refused_with_their_line(text: str, message: str) -> None:
    with pytest.raises(BadDescription, match=message):
        parse_description(text)


def test_a_huge_description_is_refused() -> None:
    with pytest.raises(BadDescription, match="too long"):
        parse_description("a=x\n" * 5000)


ICE_PREFIXES = [
    "a=candidate:",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:",
    "a=end-of-candidates",
    "a=ice-lite",
    "a=ice-pacing:",
    "a=remote-candidates:",
    f"a={HOST.to_sdp()[:30]}",
]
LINES = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(ICE_PREFIXES), st.text(max_size=60)).map("".join),
)


@given(st.lists(LINES, max_size=12))
def test_any_text_parses_or_is_a_bad_description(lines: list[str]) -> None:
    with contextlib.suppress(BadDescription):
        parse_description("\n".join(lines))
