"""The command line: version, help, and one-line errors for a user's mistakes."""

import contextlib
import os
import subprocess
import sys

import pytest

from peerline import __version__
from peerline.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"peerline {__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out
    assert "lab" in out


@pytest.mark.parametrize("argv", [["no-such-command"], ["--no-such-flag"]])
def test_bad_usage_is_one_line_exit_2(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peerline", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("peerline: error:")
    assert "Traceback" not in done.stderr


def test_closed_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """`peerline ... | head`: the reader is gone before we write; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    broken = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", broken)
    try:
        assert main(["lab", "profiles"]) == 141
    finally:
        monkeypatch.undo()
        with contextlib.suppress(OSError):
            broken.close()
