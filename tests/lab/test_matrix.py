"""The scoreboard as a test: every matrix case connects and its data arrives intact,
directly wherever the NATs allow it (issue 4's proof), also with 100 ms RTT and loss."""

import pytest

from peerline.lab.matrix import Case, all_cases, run_case
from peerline.lab.profiles import LinkShape

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

PREFIX = "plmt-"
CASES = all_cases()


def _check(case: Case, size: int, shape: LinkShape | None) -> None:
    result = run_case(case, size=size, shape=shape, prefix=PREFIX)
    assert result.connected, result.error
    assert result.verified, f"{result.bytes} of {size} bytes arrived intact: {result.error}"
    if case.direct_expected is not None:
        assert result.path == ("direct" if case.direct_expected else "relay"), result
    if case.a == "same-nat":
        assert (result.local_type, result.remote_type) == ("host", "host"), result


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_every_pair_connects_directly_where_it_can(case: Case) -> None:
    _check(case, 10_000_000, None)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_still_connects_with_100_ms_rtt_and_1_percent_loss(case: Case) -> None:
    # 25 ms one way on each access link: peer to peer crosses two, so 100 ms round trip.
    _check(case, 1_000_000, LinkShape(delay_ms=25, loss_percent=1))
