"""Start `peerline serve` with TURN on loopback for interop tests, and find its figures."""

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.metrics import fetch_metrics, parse_metrics
from tests.support.procs import PEERLINE, free_port, running

USER = "alice"
PASSWORD = "wonderland"
SECRET = "rest-secret"
REALM = "peerline.test"


@dataclass(frozen=True)
class TurnServer:
    process: "subprocess.Popen[str]"
    port: int
    tls_port: int
    metrics_port: int
    log: Path

    def metrics_text(self) -> str:
        """The body of GET /metrics, as served."""
        return fetch_metrics(self.metrics_port)

    def metrics(self) -> dict[str, float]:
        """The Prometheus figures, `name{labels}` -> value."""
        return parse_metrics(self.metrics_text())


@contextlib.contextmanager
def turn_server(
    tmp: Path, *extra: str, allow_loopback: bool = True, rate_limits: bool = False
) -> Iterator[TurnServer]:
    """`peerline serve` on 127.0.0.1 with TURN (a user and a REST secret), SIP off;
    per-source rate limits off (`--rate 0`) unless `rate_limits` keeps the defaults."""
    port, tls_port = free_port(), free_port(socket.SOCK_STREAM)
    metrics_port = free_port(socket.SOCK_STREAM)
    log = tmp / "serve.log"
    argv = [
        *PEERLINE,
        "serve",
        "--listen",
        "127.0.0.1",
        "--stun-port",
        str(port),
        "--tls-port",
        str(tls_port),
        "--sip-port",
        "0",
        "--sip-tls-port",
        "0",
        *([] if rate_limits else ["--rate", "0"]),
        "--state-dir",
        str(tmp),
        "--realm",
        REALM,
        "--user",
        f"{USER}:{PASSWORD}",
        "--auth-secret",
        SECRET,
        "--metrics-port",
        str(metrics_port),
        *(["--allow-peer", "127.0.0.0/8"] if allow_loopback else []),
        *extra,
    ]
    with running(argv, ready=lambda: "serving" in log.read_text(), log=log) as process:
        yield TurnServer(process, port, tls_port, metrics_port, log)
