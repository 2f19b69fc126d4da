"""TURN relay throughput, CPU per relayed packet, allocations/s and memory per allocation:
peerline vs coturn, same load generator, same run.

    .venv/bin/python bench/bench_turn.py [--duration 3] [--allocations 10000]

Both servers run on loopback, one after the other, with one relay thread (coturn:
`--relay-threads=1`; peerline: one event loop), no bandwidth cap and no
per-source limit, and loopback peers allowed. The same C load generator
(`bench/turnload.c`, compiled here against libcrypto) drives both, over UDP:

- memory: RSS growth of the server process while it holds `--allocations`
  allocations (made at a moderate rate, measured, then released);
- allocations/s: the highest rate of new clients (each: Allocate, 401, signed
  Allocate, no retransmission) at which < 1 % are not allocated within 200 ms;
- relayed packets/s: 64 allocations with a channel each send ChannelData at a
  paced rate to a peer socket that echoes it back, so each message is relayed
  twice; the highest rate with < 1 % of messages lost or back later than 200 ms
  (a server that only buffers what it cannot relay does not pass);
- CPU per relayed packet: server CPU time (psutil) over packets relayed at a
  fixed rate.

Prints a table and the peerline/coturn ratios. Traffic goes to 127.0.0.1 only;
every step is bounded in time.
"""

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench_stun import start, stop  # the same way to run and stop a server

HERE = Path(__file__).resolve().parent
LOSS_LIMIT_PCT = 1.0
USER, PASSWORD, REALM = "bench", "bench-password", "bench.test"
KEY = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
RELAY_CLIENTS = 64
MESSAGE_LENGTH = 100
COTURN_PORT, PEERLINE_PORT = 23578, 23579
#: New clients in one step of the allocation-rate search (then all released).
MAX_STEP_ALLOCATIONS = 10_000


@dataclass
class Result:
    name: str
    relayed_per_s: float = 0.0
    cpu_us_per_packet: float = 0.0
    allocations_per_s: float = 0.0
    bytes_per_allocation: float = 0.0
    loadgen_share: float = 0.0


def compile_loadgen(workdir: Path) -> Path:
    binary = workdir / "turnload"
    argv = ["gcc", "-O2", "-o", str(binary), str(HERE / "turnload.c"), "-lcrypto"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cannot build turnload (needs gcc and libssl-dev):\n{done.stderr}")
    return binary


def cpu_seconds(process: psutil.Process) -> float:
    """User + system time of every thread of the server so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


class Loadgen:
    """Runs `turnload` against one server; every run bounded in time."""

    def __init__(self, binary: Path, port: int) -> None:
        self.binary = binary
        self.port = port

    def _argv(self, mode: str, *numbers: float) -> list[str]:
        base = [str(self.binary), mode, "127.0.0.1", str(self.port), USER, REALM, KEY]
        return base + [f"{n:g}" for n in numbers]

    def relay(self, rate: float, duration: float, clients: int = RELAY_CLIENTS) -> dict[str, float]:
        argv = self._argv("relay", clients, int(rate), duration, MESSAGE_LENGTH)
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 40, check=False
        )
        lines = done.stdout.splitlines()
        result: dict[str, float] = json.loads(lines[-1]) if lines else {}
        if "loss_pct" not in result:  # the setup failed: say why, count it as all lost
            print(f"    turnload: {lines[-1] if lines else done.stderr.strip()}", flush=True)
            return {"loss_pct": 100.0, "to_peer": 0, "received": 0}
        return result

    def allocate(self, count: int, rate: float, hold: Callable[[], None] | None = None) -> dict:
        """Allocate `count` clients at `rate`; `hold` runs while they are all held."""
        argv = self._argv("alloc", count, int(rate), 1 if hold else 0)
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                allocated = json.loads(process.stdout.readline())
                if hold is not None:
                    hold()
                    process.stdin.write("release\n")
                    process.stdin.flush()
                released = json.loads(process.stdout.readline())
                process.wait(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
        return {**allocated, "released": released["released"]}


def highest_rate(
    probe: Callable[[float], dict[str, float]], label: str, start: float, ceiling: float
) -> tuple[float, dict[str, float]]:
    """The highest rate `probe` sustains at < 1 % loss: doubling, then bisection,
    at most 12 steps (a failing step is tried twice). Returns it with its figures."""
    best, best_outcome = 0.0, {}
    low, high, rate = 0.0, None, start
    for _ in range(12):
        outcome = probe(rate)
        ok = outcome["loss_pct"] < LOSS_LIMIT_PCT
        if not ok:  # the machine is shared: a passing stall must not decide the search
            print(f"    {label} {rate:>9.0f}/s  loss {outcome['loss_pct']:6.2f} %, again")
            outcome = probe(rate)
            ok = outcome["loss_pct"] < LOSS_LIMIT_PCT
        print(f"    {label} {rate:>9.0f}/s  loss {outcome['loss_pct']:6.2f} %", flush=True)
        if ok:
            best, best_outcome, low = rate, outcome, rate
        else:
            high = rate
        if high is None:
            if rate >= ceiling:
                break
            rate = min(rate * 2, ceiling)
        else:
            if high - low < max(500.0, 0.05 * high):
                break
            rate = (low + high) / 2
    return best, best_outcome


def wait_until_relaying(loadgen: Loadgen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if loadgen.relay(200, 0.2, clients=1).get("received", 0) > 0:
                return
        except ValueError:
            pass  # turnload's last line was not JSON
        time.sleep(0.3)
    raise SystemExit(f"the server on port {loadgen.port} does not relay")


def measure(name: str, pid: int, loadgen: Loadgen, args: argparse.Namespace) -> Result:
    process = psutil.Process(pid)
    result = Result(name)
    wait_until_relaying(loadgen)
    if "memory" in args.measure:
        result.bytes_per_allocation = memory_per_allocation(name, process, loadgen, args)
    if "allocations" in args.measure:
        result.allocations_per_s = allocation_rate(name, loadgen, args)
    if "relay" in args.measure:
        relay_figures(name, process, loadgen, args, result)
    return result


def memory_per_allocation(
    name: str, process: psutil.Process, loadgen: Loadgen, args: argparse.Namespace
) -> float:
    """RSS growth per allocation held. Measured first, on a fresh heap: memory freed
    later is reused by later allocations and would hide the growth."""
    before = process.memory_info().rss
    grown: list[int] = []

    def hold() -> None:
        time.sleep(1.0)
        grown.append(process.memory_info().rss - before)

    held = loadgen.allocate(args.allocations, args.allocation_rate, hold)
    print(
        f"    {name}: {held['allocated']} allocations held, RSS +{grown[0] / 1e6:.1f} MB, "
        f"{held['released']} released",
        flush=True,
    )
    time.sleep(2.0)
    return grown[0] / max(1, held["allocated"])


def allocation_rate(name: str, loadgen: Loadgen, args: argparse.Namespace) -> float:
    def allocations(rate: float) -> dict[str, float]:
        outcome = loadgen.allocate(
            min(MAX_STEP_ALLOCATIONS, max(500, int(rate * args.duration))), rate
        )
        time.sleep(1.5)  # let the server finish the releases before the next step
        return outcome

    best, _ = highest_rate(allocations, f"{name:9} allocations", 1000.0, args.max_allocation_rate)
    return best


def relay_figures(
    name: str, process: psutil.Process, loadgen: Loadgen, args: argparse.Namespace, result: Result
) -> None:
    def relay(rate: float) -> dict[str, float]:
        outcome = loadgen.relay(rate, args.duration)
        time.sleep(0.3)
        return outcome

    rate, outcome = highest_rate(relay, f"{name:9} messages  ", 5000.0, args.max_rate)
    result.relayed_per_s = 2 * rate
    result.loadgen_share = outcome.get("loadgen_cpu_share", 0.0)
    used = cpu_seconds(process)
    fixed = loadgen.relay(args.cpu_rate, args.duration)
    used = cpu_seconds(process) - used
    relayed = fixed["to_peer"] + fixed["received"]
    result.cpu_us_per_packet = 1e6 * used / max(1.0, relayed)


def coturn_argv(workdir: Path) -> list[str]:
    return [
        "turnserver",
        "-n",  # no /etc/turnserver.conf: only the flags below count
        "--relay-threads=1",
        "--listening-ip=127.0.0.1",
        f"--listening-port={COTURN_PORT}",
        "--relay-ip=127.0.0.1",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--allow-loopback-peers",
        "--lt-cred-mech",
        f"--user={USER}:{PASSWORD}",
        f"--realm={REALM}",
        "--no-stdout-log",
        "--log-file=/dev/null",
        f"--pidfile={workdir / 'turn.pid'}",
    ]


def peerline_argv(workdir: Path, allocations: int) -> list[str]:
    peerline = shutil.which("peerline") or str(Path(sys.executable).parent / "peerline")
    quota = str(max(allocations, MAX_STEP_ALLOCATIONS) + 1000)  # coturn has no quota
    return [
        peerline,
        "serve",
        "--listen",
        "127.0.0.1",
        "--stun-port",
        str(PEERLINE_PORT),
        "--tls-port",
        "0",
        "--sip-port",
        "0",
        "--sip-tls-port",
        "0",
        "--rate",
        "0",
        "--allow-peer",
        "127.0.0.0/8",
        "--user",
        f"{USER}:{PASSWORD}",
        "--realm",
        REALM,
        "--turn-bandwidth",
        "0",
        "--turn-user-quota",
        quota,
        "--turn-max-allocations",
        quota,
        "--state-dir",
        str(workdir / "state"),
    ]


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "n/a"


def report(results: list[Result]) -> None:
    print()
    head = ("server", "relayed pkt/s", "CPU/relayed pkt", "allocations/s", "memory/allocation")
    print(f"{head[0]:10} {head[1]:>14} {head[2]:>16} {head[3]:>14} {head[4]:>18}")
    for r in results:
        print(
            f"{r.name:10} {r.relayed_per_s:>14.0f} {r.cpu_us_per_packet:>13.2f} µs "
            f"{r.allocations_per_s:>14.0f} {r.bytes_per_allocation / 1024:>15.1f} KiB"
        )
    theirs, ours = results
    print(
        "ratio peerline/coturn: relayed packets/s "
        f"{ratio(ours.relayed_per_s, theirs.relayed_per_s)}, CPU per relayed packet "
        f"{ratio(ours.cpu_us_per_packet, theirs.cpu_us_per_packet)}, allocations/s "
        f"{ratio(ours.allocations_per_s, theirs.allocations_per_s)}, memory per allocation "
        f"{ratio(ours.bytes_per_allocation, theirs.bytes_per_allocation)}"
    )
    for r in results:
        print(
            f"load generator at {r.name}'s highest relay rate: busy {r.loadgen_share:.0%} "
            "of a core" + (" (it may have been the limit)" if r.loadgen_share > 0.9 else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load step")
    parser.add_argument("--allocations", type=int, default=10_000, help="held for memory")
    parser.add_argument("--allocation-rate", type=float, default=2000.0, help="for memory")
    parser.add_argument("--max-allocation-rate", type=float, default=64_000.0)
    parser.add_argument("--max-rate", type=float, default=640_000.0, help="messages/s")
    parser.add_argument("--cpu-rate", type=float, default=10_000.0, help="messages/s for CPU")
    parser.add_argument("--only", choices=("coturn", "peerline"), help="measure one server")
    parser.add_argument(
        "--measure",
        type=lambda text: set(text.split(",")),
        default={"memory", "allocations", "relay"},
        help="what to measure, comma-separated: memory, allocations, relay (default: all)",
    )
    args = parser.parse_args()
    if not args.measure <= {"memory", "allocations", "relay"}:
        parser.error("--measure takes memory, allocations and relay")
    if not 1 <= args.allocations <= 15_000:
        parser.error("--allocations must be between 1 and 15000")
    if shutil.which("turnserver") is None:
        print("coturn's turnserver is not installed (apt-get install coturn)", file=sys.stderr)
        return 1
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by both servers
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        binary = compile_loadgen(workdir)
        results = []
        servers = [
            ("coturn", coturn_argv(workdir), COTURN_PORT),
            ("peerline", peerline_argv(workdir, args.allocations), PEERLINE_PORT),
        ]
        for name, argv, port in servers:
            if args.only not in (None, name):
                continue
            print(f"{name}:", flush=True)
            server = start(argv)
            try:
                results.append(measure(name, server.pid, Loadgen(binary, port), args))
            finally:
                stop(server)
    if len(results) == 2:
        report(results)
    else:
        r = results[0]
        print(
            f"{r.name}: {r.relayed_per_s:.0f} relayed/s, {r.cpu_us_per_packet:.2f} µs CPU per "
            f"relayed packet, {r.allocations_per_s:.0f} allocations/s, "
            f"{r.bytes_per_allocation / 1024:.1f} KiB per allocation"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
