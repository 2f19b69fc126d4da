"""`python -m peerline.session.selftest`: the loopback self-test runs end to end, and a
wrong argument is one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from peerline.session.selftest import main, run_selftest


async def test_the_selftest_moves_a_stream_and_messages_over_loopback() -> None:
    result = await run_selftest(2 * 1024 * 1024 + 17, 20)
    assert result.verified
    assert result.size == 2 * 1024 * 1024 + 17
    assert result.messages_in_order
    assert result.path.startswith("direct: host 127.0.0.1:")


def test_the_command_prints_its_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--megabytes", "0.5", "--messages", "3"]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 verified" in out
    assert "3 messages each way, in order" in out


@pytest.mark.parametrize("argv", [["--megabytes", "lots"], ["--messages", "-1"], ["--bogus"]])
def test_a_wrong_argument_is_one_line_and_exit_2(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peerline.session.selftest", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
