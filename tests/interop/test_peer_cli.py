"""`peerline offer`, `answer` and `connect` as a user runs them, two processes on 127.0.0.1:
files both ways intact, a shared directory, relay-only through `peerline serve`,
a pasted answer on a terminal, and one clear line for every mistake."""

import contextlib
import hashlib
import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerline.peer.description import Kind, PeerDescription
from peerline.session.blob import decode_blob, encode_blob
from peerline.session.identity import Identity
from tests.interop.turn_support import PASSWORD, USER, turn_server
from tests.support.procs import PEERLINE, stop_process

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

LOOPBACK = ["--address", "127.0.0.1", "--timeout", "20"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def started(
    argv: list[str], *, stdin: Path | None, stdout: Path, stderr: Path
) -> Iterator["subprocess.Popen[bytes]"]:
    with contextlib.ExitStack() as files:
        source = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        process = subprocess.Popen(
            argv,
            stdin=source,
            stdout=files.enter_context(stdout.open("wb")),
            stderr=files.enter_context(stderr.open("wb")),
        )
        try:
            yield process
        finally:
            stop_process(process)  # type: ignore[arg-type]


def offer_answer(tmp: Path, *extra: str, a_data: bytes, b_data: bytes) -> tuple[int, int]:
    """peer A offers, peer B answers, through files; each sends its data; exit codes."""
    (tmp / "a.in").write_bytes(a_data)
    (tmp / "b.in").write_bytes(b_data)
    offer = [*PEERLINE, "offer", *LOOPBACK, *extra, "--offer-to", str(tmp / "offer"),
             "--answer-from", str(tmp / "answer"), "--report", str(tmp / "a.json")]  # fmt: skip
    answer = [*PEERLINE, "answer", *LOOPBACK, *extra, "--offer-from", str(tmp / "offer"),
              "--answer-to", str(tmp / "answer"), "--report", str(tmp / "b.json")]  # fmt: skip
    with (
        started(offer, stdin=tmp / "a.in", stdout=tmp / "a.out", stderr=tmp / "a.err") as a,
        started(answer, stdin=tmp / "b.in", stdout=tmp / "b.out", stderr=tmp / "b.err") as b,
    ):
        return a.wait(timeout=60), b.wait(timeout=60)


def report(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_offer_and_answer_carry_both_directions_intact(tmp_path: Path) -> None:
    codes = offer_answer(tmp_path, a_data=os.urandom(3_000_000), b_data=os.urandom(200_000))
    assert codes == (0, 0), (tmp_path / "a.err").read_text() + (tmp_path / "b.err").read_text()
    assert digest(tmp_path / "b.out") == digest(tmp_path / "a.in")
    assert digest(tmp_path / "a.out") == digest(tmp_path / "b.in")
    a, b = report(tmp_path / "a.json"), report(tmp_path / "b.json")
    assert (a["path"], a["local_type"], a["remote_type"]) == ("direct", "host", "host")
    assert a["verified"] is b["verified"] is True
    assert a["peer_verified"] is b["peer_verified"] is True
    assert a["sent_sha256"] == b["received_sha256"] == digest(tmp_path / "a.in")
    assert isinstance(a["rtt_ms"], float)
    assert "connected in" in (tmp_path / "a.err").read_text()


def test_relay_only_goes_through_peerline_serve(tmp_path: Path) -> None:
    with turn_server(tmp_path) as server:
        turn = ["--relay-only", "--turn", f"turn:{USER}:{PASSWORD}@127.0.0.1:{server.port}"]
        codes = offer_answer(tmp_path, *turn, a_data=os.urandom(500_000), b_data=b"")
        assert codes == (0, 0), (tmp_path / "a.err").read_text()
        figures = server.metrics()
    a = report(tmp_path / "a.json")
    assert (a["path"], a["local_type"], a["remote_type"]) == ("relay", "relay", "relay")
    assert digest(tmp_path / "b.out") == digest(tmp_path / "a.in")
    relayed = sum(v for k, v in figures.items() if k.startswith("peerline_turn_relayed_bytes"))
    assert relayed >= 500_000


def test_both_sides_meet_in_one_directory(tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    (tmp_path / "one.in").write_bytes(os.urandom(100_000))
    (tmp_path / "two.in").write_bytes(os.urandom(100_000))

    def side(name: str) -> list[str]:
        return [*PEERLINE, "connect", str(meet), *LOOPBACK, "--report", str(tmp_path / name)]

    with started(side("one.json"), stdin=tmp_path / "one.in", stdout=tmp_path / "one.out",
                 stderr=tmp_path / "one.err") as one:  # fmt: skip
        time.sleep(0.2)
        with started(side("two.json"), stdin=tmp_path / "two.in", stdout=tmp_path / "two.out",
                     stderr=tmp_path / "two.err") as two:  # fmt: skip
            assert (one.wait(timeout=60), two.wait(timeout=60)) == (0, 0)
    assert digest(tmp_path / "two.out") == digest(tmp_path / "one.in")
    assert digest(tmp_path / "one.out") == digest(tmp_path / "two.in")
    roles = {report(tmp_path / "one.json")["role"], report(tmp_path / "two.json")["role"]}
    assert roles == {"offer", "answer"}
    assert list(meet.iterdir()) == [], "the offerer leaves the directory clean"


def test_a_pasted_answer_on_a_terminal(tmp_path: Path) -> None:
    """A person: the offer printed on the terminal, the answer pasted into it, then typing."""
    master, slave = pty.openpty()
    offerer = subprocess.Popen(
        [*PEERLINE, "offer", *LOOPBACK], stdin=slave, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(slave)
    try:
        assert offerer.stderr is not None
        blob = ""
        deadline = time.monotonic() + 30
        while not blob and time.monotonic() < deadline:
            line = offerer.stderr.readline().decode()
            assert line, "the offerer ended before printing its offer"
            blob = line.strip() if line.startswith("PL1") else ""
        with (tmp_path / "b.out").open("wb") as out:
            answerer = subprocess.Popen(
                [*PEERLINE, "answer", *LOOPBACK, blob, "--answer-to", str(tmp_path / "answer")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                while not (tmp_path / "answer").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                answer = (tmp_path / "answer").read_text().strip()
                # pasted as a terminal wraps it: in pieces, with a stray newline
                os.write(master, answer[:40].encode() + b"\n" + answer[40:].encode() + b"\n")
                os.write(master, b"hello over a direct path\n")
                time.sleep(1.0)
                os.write(master, b"\x04")  # Ctrl-D: the end of what we type
                assert answerer.wait(timeout=60) == 0
                assert offerer.wait(timeout=60) == 0
            finally:
                stop_process(answerer)  # type: ignore[arg-type]
        assert (tmp_path / "b.out").read_bytes() == b"hello over a direct path\n"
    finally:
        stop_process(offerer)  # type: ignore[arg-type]
        if offerer.stderr is not None:
            offerer.stderr.close()
        with contextlib.suppress(OSError):
            while select.select([master], [], [], 0)[0] and os.read(master, 4096):
                pass
        os.close(master)


def _one_line_error(argv: list[str], expected: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr


def test_mistakes_get_one_clear_line(tmp_path: Path) -> None:
    _one_line_error([*PEERLINE, "answer", *LOOPBACK, "hello"], "not a peerline offer or answer")
    _one_line_error([*PEERLINE, "answer", *LOOPBACK, "PL1abc"], "damaged")
    identity = Identity.ephemeral()
    answer = PeerDescription(kind=Kind.ANSWER, fingerprint=identity.fingerprint, ice="")
    _one_line_error([*PEERLINE, "answer", *LOOPBACK, answer.to_blob()], "an offer is needed here")
    _one_line_error([*PEERLINE, "offer", "--stun", "stun:[::1"], "bad server address")
    _one_line_error([*PEERLINE, "offer", "--relay-only"], "needs at least one TURN server")
    _one_line_error([*PEERLINE, "offer", "--timeout", "0"], "--timeout must be > 0")


def test_an_answer_that_never_comes_is_one_line_after_wait(tmp_path: Path) -> None:
    done = subprocess.run(
        [*PEERLINE, "offer", *LOOPBACK, "--offer-to", str(tmp_path / "offer"),
         "--answer-from", str(tmp_path / "never"), "--wait", "1"],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("peerline: error: no answer")


def test_an_answer_with_another_certificate_is_refused(tmp_path: Path) -> None:
    """Someone who swaps the answer's fingerprint cannot stand in the middle: the
    offerer's session refuses the certificate it meets."""
    offer = [*PEERLINE, "offer", *LOOPBACK, "--offer-to", str(tmp_path / "offer"),
             "--answer-from", str(tmp_path / "forged")]  # fmt: skip
    answer = [*PEERLINE, "answer", *LOOPBACK, "--offer-from", str(tmp_path / "offer"),
              "--answer-to", str(tmp_path / "answer")]  # fmt: skip
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with (
        started(offer, stdin=empty, stdout=tmp_path / "a.out", stderr=tmp_path / "a.err") as a,
        started(answer, stdin=empty, stdout=tmp_path / "b.out", stderr=tmp_path / "b.err"),
    ):
        deadline = time.monotonic() + 30
        while not (tmp_path / "answer").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = decode_blob((tmp_path / "answer").read_text())
        other = Identity.ephemeral().fingerprint.format_attribute()
        forged = "\n".join(other if "fingerprint" in line else line for line in text.splitlines())
        (tmp_path / "forged").write_text(encode_blob(forged + "\n"))
        assert a.wait(timeout=60) == 1
    errors = (tmp_path / "a.err").read_text()
    assert "Traceback" not in errors
    assert "peerline: error:" in errors


def test_a_peer_that_vanishes_is_noticed_and_said_in_one_line(tmp_path: Path) -> None:
    """The answerer is killed mid-transfer: consent (RFC 7675: 30 s without an answer)
    ends the offerer's session, and it says so in one line, not a traceback."""
    offer = [*PEERLINE, "offer", *LOOPBACK, "--offer-to", str(tmp_path / "offer"),
             "--answer-from", str(tmp_path / "answer"),
             "--report", str(tmp_path / "a.json")]  # fmt: skip
    answer = [*PEERLINE, "answer", *LOOPBACK, "--offer-from", str(tmp_path / "offer"),
              "--answer-to", str(tmp_path / "answer")]  # fmt: skip
    endless = Path("/dev/zero")
    with (
        started(offer, stdin=endless, stdout=tmp_path / "a.out", stderr=tmp_path / "a.err") as a,
        started(answer, stdin=None, stdout=tmp_path / "b.out", stderr=tmp_path / "b.err") as b,
    ):
        deadline = time.monotonic() + 30
        while (tmp_path / "b.out").stat().st_size < 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "b.out").stat().st_size >= 1_000_000, (tmp_path / "b.err").read_text()
        b.kill()
        assert a.wait(timeout=90) == 1
    errors = (tmp_path / "a.err").read_text()
    assert "Traceback" not in errors
    [line] = [text for text in errors.splitlines() if text.startswith("peerline: error:")]
    assert "lost" in line
    assert "lost" in str(report(tmp_path / "a.json")["error"])
