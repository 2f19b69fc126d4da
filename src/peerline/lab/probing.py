"""Driving a probe agent (`peerline.lab.probe`) in a lab host from this process.

with lab.probe("server") as server, lab.probe("peer-a") as peer:
    listening = server.open("203.0.113.1", 7000)
    sender = peer.open()
    sender.send(("203.0.113.1", 7000), "hello")
    seen = listening.receive(["hello"])   # {"hello": ("203.0.113.10", 41000)}
"""

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from peerline.lab.tools import LabError
from peerline.net import Address

#: How long the agent may take to answer beyond the wait the request itself asks for.
_ANSWER_SLACK_S = 10.0


class Probe:
    """One agent process; its sockets are `ProbeSocket`s. Close it (or use `with`)."""

    def __init__(self, process: "subprocess.Popen[bytes]", host: str) -> None:
        self._process = process
        self.host = host
        self._buffer = b""

    @staticmethod
    def agent_argv() -> list[str]:
        return [sys.executable, "-m", "peerline.lab.probe"]

    @classmethod
    def start(cls, argv: Sequence[str], host: str) -> "Probe":
        process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        return cls(process, host)

    def open(self, ip: str = "0.0.0.0", port: int = 0) -> "ProbeSocket":
        """A UDP socket bound to ip:port in the host (port 0: the kernel picks one)."""
        answer = self.request({"op": "open", "ip": ip, "port": port})
        local = answer["local"]
        return ProbeSocket(self, int(answer["socket"]), (str(local[0]), int(local[1])))

    def request(self, message: dict[str, Any], wait: float = 0.0) -> dict[str, Any]:
        """Send one request; its answer, or LabError if the agent failed or went quiet."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise LabError(f"the probe in {self.host} has exited: {self._stderr()}") from None
        answer: dict[str, Any] = json.loads(self._read_line(wait + _ANSWER_SLACK_S))
        if not answer.get("ok"):
            raise LabError(f"the probe in {self.host} failed: {answer.get('error')}")
        return answer

    def _read_line(self, timeout: float) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"the probe in {self.host} did not answer within {timeout:g} s")
            readable, _, _ = select.select([stdout], [], [], remaining)
            if readable:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise LabError(f"the probe in {self.host} has exited: {self._stderr()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _stderr(self) -> str:
        self.close()
        stderr = self._process.stderr
        text = stderr.read().decode(errors="replace") if stderr else ""
        return text.strip().splitlines()[-1] if text.strip() else "no message"

    def close(self) -> None:
        """End the agent: end of input first, then kill if it lingers."""
        if self._process.stdin and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=3)
        if self._process.stdout:
            self._process.stdout.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        if self._process.stderr:
            self._process.stderr.close()


@dataclass(frozen=True, slots=True)
class ProbeSocket:
    """A UDP socket inside a lab host, bound to `local`."""

    probe: Probe
    id: int
    local: Address

    def send(self, to: Address, payload: str) -> None:
        self.probe.request(
            {"op": "send", "socket": self.id, "to": [to[0], to[1]], "payload": payload}
        )

    def receive(
        self,
        payloads: Sequence[str],
        timeout: float = 1.0,
        *,
        last: str | None = None,
        settle: float = 0.2,
    ) -> dict[str, Address]:
        """Which of `payloads` arrived within `timeout` (stops early once all have), and
        the source address each came from. With `last`, a payload sent after the others,
        the others get only `settle` seconds more once it has come: a verdict of
        "dropped" then waits for proof that the path works, not for a fixed time."""
        request: dict[str, Any] = {
            "op": "receive",
            "socket": self.id,
            "payloads": list(payloads),
            "timeout": timeout,
        }
        if last is not None:
            request.update(last=last, settle=settle)
        answer = self.probe.request(request, wait=timeout)
        return {
            payload: (str(source[0]), int(source[1]))
            for payload, source in answer["received"].items()
        }

    def close(self) -> None:
        self.probe.request({"op": "close", "socket": self.id})
