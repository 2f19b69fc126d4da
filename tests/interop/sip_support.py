"""What the SIP interop tests share: `peerline serve` as a registrar on loopback, and
reading its own figures."""

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.metrics import fetch_metrics, parse_metrics
from tests.support.procs import PEERLINE, free_port, running

DOMAIN = "example.test"


@dataclass(frozen=True)
class SipServe:
    """A running `peerline serve`: its ports (0 = not served) and its log."""

    sip: int
    tls: int
    ws: int
    wss: int
    metrics: int
    log: Path


@contextlib.contextmanager
def sip_serve(
    tmp: Path,
    users: dict[str, str],
    *,
    tls: bool = False,
    ws: bool = False,
    wss: bool = False,
    metrics: bool = False,
    extra: Sequence[str] = (),
) -> Iterator[SipServe]:
    """`peerline serve` on 127.0.0.1 for DOMAIN with `users` (and `extra` flags), on
    free ports; stopped on the way out, and it must not have printed a traceback."""
    ports = SipServe(
        sip=free_port(),
        tls=free_port() if tls else 0,
        ws=free_port() if ws else 0,
        wss=free_port() if wss else 0,
        metrics=free_port() if metrics else 0,
        log=tmp / "serve.log",
    )
    argv = [
        *PEERLINE,
        "serve",
        "--listen",
        "127.0.0.1",
        "--stun-port",
        str(free_port()),
        "--tls-port",
        "0",
        "--sip-port",
        str(ports.sip),
        "--sip-tls-port",
        str(ports.tls),
        "--sip-ws-port",
        str(ports.ws),
        "--sip-wss-port",
        str(ports.wss),
        "--metrics-port",
        str(ports.metrics),
        "--domain",
        DOMAIN,
        "--state-dir",
        str(tmp),
        *[arg for name, pw in users.items() for arg in ("--user", f"{name}:{pw}")],
        *extra,
    ]
    with running(argv, ready=lambda: "serving" in ports.log.read_text(), log=ports.log):
        yield ports
        assert "Traceback" not in ports.log.read_text()


def serve_metric(metrics_port: int, name: str) -> float:
    """One unlabelled sample from `peerline serve --metrics-port` (Prometheus text)."""
    return parse_metrics(fetch_metrics(metrics_port))[name]
