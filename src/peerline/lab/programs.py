"""peerline's own programs running on lab hosts: started, awaited, always stopped.

The demo and the lab tests all start `peerline serve` on the lab's server and
need the same three things: its start-up lines (what it serves), to know it is
ready before a peer sends, and to stop it without leaking a pipe.
"""

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from peerline.lab.lab import Lab

PEERLINE = (sys.executable, "-m", "peerline")

#: `peerline serve` prints this line once every listener is open.
READY_LINE = "serving"


@dataclass
class LabProgram:
    """A peerline command running on a lab host, with what it printed until ready."""

    host: str
    process: "subprocess.Popen[str]"
    startup: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """TERM, then KILL if it lingers; closes its output pipe either way."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_serve(lab: Lab, host: str, args: Sequence[str], *, max_lines: int = 100) -> LabProgram:
    """`peerline serve ARGS` on `host`, returned once it says it is serving.

    If it exits first, the returned program is not `running` and `startup` holds
    what it said (its one-line error).
    """
    process = lab.popen(
        host,
        [*PEERLINE, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    program = LabProgram(host, process)
    assert process.stdout is not None
    for _ in range(max_lines):
        line = process.stdout.readline()
        if not line:
            break
        program.startup.append(line.rstrip("\n"))
        if line.startswith(READY_LINE):
            break
    return program
