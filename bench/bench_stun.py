"""STUN Binding throughput and CPU per request: peerline vs coturn, same load, same run.

    .venv/bin/python bench/bench_stun.py [--duration 3] [--max-rate 200000]

Both servers run on loopback with one thread for STUN (coturn: `--stun-only
--relay-threads=1`; peerline: one event loop) and no per-source rate limit (coturn
has none by default). The same C load generator (`bench/stunload.c`, compiled
here) drives both: for each server it finds the highest rate with < 1 % loss,
then measures server CPU time per request at a fixed rate. Prints a table and
the peerline/coturn ratios. Traffic goes to 127.0.0.1 only.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOSS_LIMIT_PCT = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    max_rate: float
    cpu_us_per_request: float


def compile_loadgen(workdir: Path) -> Path:
    binary = workdir / "stunload"
    subprocess.run(
        ["gcc", "-O2", "-o", str(binary), str(HERE / "stunload.c")], check=True, timeout=60
    )
    return binary


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load(binary: Path, port: int, rate: float, duration: float) -> dict[str, float]:
    done = subprocess.run(
        [str(binary), "127.0.0.1", str(port), str(int(rate)), str(duration)],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def wait_for_port(binary: Path, port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if load(binary, port, 100, 0.2)["received"] > 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not answer")


def measure(name: str, pid: int, binary: Path, port: int, args: argparse.Namespace) -> Result:
    wait_for_port(binary, port)
    best, rate = 0.0, 10_000.0
    low, high = 0.0, None
    for _ in range(12):  # bounded search: doubling, then bisection
        outcome = load(binary, port, rate, args.duration)
        ok = outcome["loss_pct"] < LOSS_LIMIT_PCT
        print(f"  {name:9} {rate:>9.0f}/s  loss {outcome['loss_pct']:6.2f} %", flush=True)
        if ok:
            best = low = rate
        else:
            high = rate
        if high is None:
            rate = min(rate * 2, args.max_rate)
            if low == args.max_rate:
                break
        else:
            if high - low < max(2000.0, 0.05 * high):
                break
            rate = (low + high) / 2
        time.sleep(0.3)
    fixed = args.cpu_rate
    before = cpu_seconds(pid)
    outcome = load(binary, port, fixed, args.duration)
    used = cpu_seconds(pid) - before
    cpu_us = 1e6 * used / max(1.0, outcome["received"])
    return Result(name, best, cpu_us)


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load step")
    parser.add_argument("--max-rate", type=float, default=320_000.0)
    parser.add_argument("--cpu-rate", type=float, default=10_000.0, help="rate for CPU/request")
    args = parser.parse_args()
    if shutil.which("turnserver") is None:
        print("coturn's turnserver is not installed (apt-get install coturn)", file=sys.stderr)
        return 1
    peerline = shutil.which("peerline") or str(Path(sys.executable).parent / "peerline")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        binary = compile_loadgen(workdir)
        results = []
        coturn = start(
            [
                "turnserver",
                "-n",  # no /etc/turnserver.conf: only the flags below count
                "--stun-only",
                "--relay-threads=1",
                "--listening-ip=127.0.0.1",
                "--listening-port=23478",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--log-file=stdout",
                f"--pidfile={workdir / 'turn.pid'}",
            ]
        )
        try:
            results.append(measure("coturn", coturn.pid, binary, 23478, args))
        finally:
            stop(coturn)
        ours = start(
            [
                peerline,
                "serve",
                "--listen",
                "127.0.0.1",
                "--stun-port",
                "23479",
                "--tls-port",
                "0",
                "--rate",
                "0",
                "--state-dir",
                str(workdir / "state"),
            ]
        )
        try:
            results.append(measure("peerline", ours.pid, binary, 23479, args))
        finally:
            stop(ours)
    coturn_result, peerline_result = results
    print()
    print(f"{'server':10} {'max rate (<1% loss)':>20} {'CPU per request':>16}")
    for result in results:
        print(f"{result.name:10} {result.max_rate:>18.0f}/s {result.cpu_us_per_request:>13.1f} µs")
    throughput = peerline_result.max_rate / coturn_result.max_rate
    cpu = peerline_result.cpu_us_per_request / coturn_result.cpu_us_per_request
    print(f"ratio peerline/coturn: throughput {throughput:.2f}, CPU per request {cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
