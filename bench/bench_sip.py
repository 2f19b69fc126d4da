"""SIP registrar and proxy throughput: peerline vs Kamailio, same sipp load, same run.

    .venv/bin/python bench/bench_sip.py [--users 100000] [--duration 4]

Both servers run on 127.0.0.1 with one worker (peerline: one event loop;
Kamailio: `children=1`, config in bench/kamailio-sip.cfg), digest MD5 (what
sipp answers), passwords that need no database on either side, and no
per-source limit. sipp (Debian sip-tester) drives both with the scenarios of
the interop tests. For each server it measures:

- authenticated REGISTERs per second: the highest open-loop rate whose
  registrations fail < 1 % (doubling, then bisection);
- server CPU time per registration, at a fixed rate below both maxima, less what
  the server spends idle over the same time;
- proxied call attempts per second (INVITE/200/ACK, BYE/200 through the proxy
  to a sipp UAS) at < 1 % failures, and server CPU time per call at a fixed rate;
- memory per registration with `--users` users registered: the growth of the
  proportional set size (PSS) of the server's processes, the same measure for
  both (Kamailio's processes share their memory; PSS counts each page once).
  Kamailio's own figure for its shared memory (where usrloc lives) is printed too.

Prints a table and the peerline/Kamailio ratios. Traffic stays on loopback.
"""

import argparse
import contextlib
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # for tests.support.procs: ports, and programs always stopped

from tests.support.procs import PEERLINE, free_port, running  # noqa: E402

SCENARIOS = ROOT / "tests" / "interop" / "sipp"
FAIL_LIMIT_PCT = 1.0
DOMAIN = "example.test"
UAC_IP = "127.0.0.2"
UAS_USER = "callee"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int
    #: What the server itself says it uses (Kamailio: shared memory), if it says.
    reported_memory: Callable[[], int] | None = None

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            times = proc.cpu_times()
            total += times.user + times.system
        return total

    def memory(self) -> int:
        """PSS of every process of the server, in bytes."""
        return sum(proc.memory_full_info().pss for proc in self.processes())


@dataclass
class Found:
    """The result of a rate search."""

    rate: float = 0.0
    #: A faster step failed only because sipp, running flat out, could not offer
    #: its rate (< 1 % failures): the server's own limit lies higher, `rate` is a floor.
    floor: bool = False

    def __str__(self) -> str:
        return f"{'>=' if self.floor else ''}{self.rate:.0f}"


@dataclass
class Result:
    name: str
    register_rate: Found = field(default_factory=Found)
    cpu_us_per_register: float = 0.0
    call_rate: Found = field(default_factory=Found)
    cpu_us_per_call: float = 0.0
    bytes_per_registration: float = 0.0
    reported_bytes_per_registration: float | None = None


def password(user: str) -> str:
    return f"pw-{user}"


def write_users(workdir: Path, count: int) -> tuple[Path, Path]:
    names = [f"u{i}" for i in range(count)] + [UAS_USER]
    csv = workdir / "users.csv"
    csv.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{n};{DOMAIN};[authentication username={n} password={password(n)}]\n" for n in names
        )
    )
    users = workdir / "users.txt"
    users.write_text("".join(f"{n}:{password(n)}\n" for n in names))
    return csv, users


def sipp(port: int, args: list[str], workdir: Path, timeout: float) -> dict[str, float]:
    """Run sipp to the end; its cumulative successful and failed calls, elapsed seconds."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-nostdin", "-timeout", f"{int(timeout)}s", *args],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
        cwd=workdir,
    )
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def cumulative(label: str) -> float:
        found = re.findall(rf"{label}\s*\|\s*(\d+)\s*\|\s*(\d+)", done.stdout)
        return float(found[-1][1]) if found else 0.0

    rates = re.findall(r"Call Rate\s*\|\s*[\d.]+ cps\s*\|\s*([\d.]+) cps", done.stdout)
    return {
        "ok": cumulative("Successful call"),
        "failed": cumulative("Failed call"),
        "elapsed": elapsed,
        # The rate sipp really started calls at: below the target when the server (or
        # sipp itself) cannot keep up and the concurrency limit holds new calls back.
        "rate": float(rates[-1]) if rates else 0.0,
        # Share of one core sipp itself used: near 1, sipp is what limits the rate.
        "sipp_busy": sipp_cpu / elapsed if elapsed > 0 else 0.0,
    }


def register_run(
    server: Server, csv: Path, workdir: Path, rate: float, count: int
) -> dict[str, float]:
    return sipp(
        server.port,
        [
            "-sf", str(SCENARIOS / "register.xml"), "-inf", str(csv), "-i", "127.0.0.1",
            "-r", str(int(rate)), "-m", str(count), "-l", str(max(100, int(rate))),
            "-recv_timeout", "5000",
        ],
        workdir,
        timeout=count / rate + 20,
    )  # fmt: skip


def failure_pct(outcome: dict[str, float]) -> float:
    total = outcome["ok"] + outcome["failed"]
    return 100.0 if total == 0 else 100.0 * outcome["failed"] / total


def search(name: str, what: str, run: Callable[[float], dict[str, float]], start: float) -> Found:
    """The highest rate sustained with < 1 % failures: doubling, then bisection
    (bounded). A step passes only if sipp really offered the rate (within 5 %):
    a step that quietly ran slower proves nothing about the rate asked for."""
    found = Found()
    low, high, rate = 0.0, None, start
    for _ in range(9):
        outcome = run(rate)
        pct = failure_pct(outcome)
        offered = outcome["rate"]
        print(
            f"  {name:9} {what:9} {rate:>7.0f}/s  offered {offered:>8.0f}/s  failures {pct:6.2f} %",
            flush=True,
        )
        if pct < FAIL_LIMIT_PCT and offered >= 0.95 * rate:
            found.rate = low = rate
        else:
            high = rate
            if pct < FAIL_LIMIT_PCT and outcome["sipp_busy"] >= 0.85:
                found.floor = True  # sipp ran flat out: it, not the server, fell short
        if high is None:
            rate *= 2
        elif high - low <= max(50.0, 0.1 * high):
            break
        else:
            rate = (low + high) / 2
    return found


@contextlib.contextmanager
def peerline_server(workdir: Path, users: Path) -> Iterator[Server]:
    port = free_port()
    log = workdir / "peerline.log"
    argv = [
        *PEERLINE, "serve", "--listen", "127.0.0.1",
        "--stun-port", str(free_port()), "--tls-port", "0", "--sip-port", str(port),
        "--sip-tls-port", "0", "--domain", DOMAIN, "--sip-digest", "MD5", "--rate", "0",
        "--users-file", str(users), "--state-dir", str(workdir),
    ]  # fmt: skip
    with running(argv, ready=lambda: "serving" in log.read_text(), timeout=60, log=log) as process:
        yield Server("peerline", process, port)


@contextlib.contextmanager
def kamailio_server(workdir: Path) -> Iterator[Server]:
    port = free_port()
    control = workdir / "kamailio.ctl"
    config = (HERE / "kamailio-sip.cfg").read_text()
    config = config.replace("PORT", str(port)).replace("CTL", str(control))
    config = config.replace('"PASSWORD_PREFIX"', '"pw-"')
    (workdir / "kamailio.cfg").write_text(config)
    argv = [
        "kamailio", "-f", str(workdir / "kamailio.cfg"), "-DD", "-E", "-m", "1024",
        "-P", str(workdir / "kamailio.pid"), "-Y", str(workdir), "-w", str(workdir),
    ]  # fmt: skip

    def shm_used() -> int:
        done = subprocess.run(
            ["kamcmd", "-s", f"unix:{control}", "core.shmmem"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return int(re.search(r"used:\s*(\d+)", done.stdout).group(1))  # type: ignore[union-attr]

    with running(argv, ready=control.exists, timeout=30, log=workdir / "kamailio.log") as process:
        time.sleep(0.5)
        yield Server("kamailio", process, port, shm_used)


def idle_cpu(server: Server, seconds: float) -> float:
    """CPU seconds per second the server spends with no load (its timers and
    housekeeping; Kamailio has several processes doing them), so that the
    CPU per request counts the requests only."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


def measure(server: Server, csv: Path, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(server.name)
    duration = args.duration
    # Everyone once, at a modest rate: the memory figure, and a warm server.
    before = server.memory()
    reported = server.reported_memory() if server.reported_memory else None
    outcome = register_run(server, csv, workdir, args.fill_rate, args.users + 1)
    if outcome["ok"] < args.users:
        print(f"  {server.name}: only {outcome['ok']:.0f} of {args.users} registered", flush=True)
    time.sleep(args.settle)
    registered = max(1.0, outcome["ok"])
    result.bytes_per_registration = (server.memory() - before) / registered
    if server.reported_memory is not None and reported is not None:
        result.reported_bytes_per_registration = (server.reported_memory() - reported) / registered
    result.register_rate = search(
        server.name,
        "REGISTER",
        lambda rate: register_run(server, csv, workdir, rate, int(rate * duration)),
        args.start_rate,
    )
    cpu_rate = args.cpu_rate
    idle = idle_cpu(server, duration)
    cpu_before = server.cpu_seconds()
    outcome = register_run(server, csv, workdir, cpu_rate, int(cpu_rate * duration))
    cpu = server.cpu_seconds() - cpu_before - idle * outcome["elapsed"]
    result.cpu_us_per_register = 1e6 * cpu / max(1.0, outcome["ok"])
    result.call_rate, result.cpu_us_per_call = calls(server, csv, workdir, args)
    return result


def calls(
    server: Server, csv: Path, workdir: Path, args: argparse.Namespace
) -> tuple[Found, float]:
    """Call attempts per second through the proxy to one sipp UAS, registered as
    `callee`, and the server's CPU time per call at a fixed rate below both maxima."""
    uas_port = free_port()
    one = workdir / "callee.csv"
    one.write_text(
        f"SEQUENTIAL\n{UAS_USER};{DOMAIN};[authentication username={UAS_USER} "
        f"password={password(UAS_USER)}]\n"
    )
    outcome = sipp(
        server.port,
        ["-sf", str(SCENARIOS / "register.xml"), "-inf", str(one), "-m", "1",
         "-i", "127.0.0.1", "-p", str(uas_port)],
        workdir,
        timeout=10,
    )  # fmt: skip
    if outcome["ok"] != 1:
        raise SystemExit(f"{server.name}: the callee could not register")
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_call.xml"), "-i", "127.0.0.1", "-p",
         str(uas_port), "-nostdin", "-bg"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )  # fmt: skip
    time.sleep(0.5)

    def run(rate: float) -> dict[str, float]:
        count = int(rate * args.duration)
        return sipp(
            server.port,
            ["-sf", str(SCENARIOS / "uac_call.xml"), "-s", UAS_USER, "-i", UAC_IP,
             "-r", str(int(rate)), "-m", str(count), "-l", str(max(200, int(rate))),
             "-recv_timeout", "5000"],
            workdir,
            timeout=count / rate + 20,
        )  # fmt: skip

    try:
        idle = idle_cpu(server, args.duration)
        cpu_before = server.cpu_seconds()
        outcome = run(args.call_cpu_rate)
        cpu = server.cpu_seconds() - cpu_before - idle * outcome["elapsed"]
        cpu_us = 1e6 * cpu / max(1.0, outcome["ok"])
        return search(server.name, "calls", run, args.start_rate / 2), cpu_us
    finally:
        uas.wait(timeout=5)  # -bg: the parent exits at once; the UAS itself is found below
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if proc.info["name"] == "sipp" and str(uas_port) in cmdline:
                proc.terminate()


def version(argv: list[str]) -> str:
    """The first line of a program's version output that names a version."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        if re.search(r"\d+\.\d+", line):
            return line.strip()
    return argv[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users registered at once")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load step")
    parser.add_argument("--start-rate", type=float, default=1000.0, help="first rate tried")
    parser.add_argument("--fill-rate", type=float, default=1000.0, help="rate of the fill")
    parser.add_argument("--cpu-rate", type=float, default=1000.0, help="rate of the CPU run")
    parser.add_argument(
        "--call-cpu-rate", type=float, default=100.0, help="call rate of the CPU-per-call run"
    )
    parser.add_argument(
        "--settle", type=float, default=35.0, help="wait after the fill (replies cached 32 s)"
    )
    parser.add_argument(
        "--servers",
        default="peerline,kamailio",
        help="which servers to measure, comma-separated (ratios need both)",
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not wanted or any(name not in ("peerline", "kamailio") for name in wanted):
        parser.error("--servers: peerline, kamailio or both")
    for program, package in (("sipp", "sip-tester"), ("kamailio", "kamailio")):
        if shutil.which(program) is None:
            raise SystemExit(f"needs {program} (Debian package {package})")
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()} with {psutil.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {version(['kamailio', '-v'])}, "
        f"{version(['sipp', '-v'])}; {args.users} users",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        workdir = Path(tmp)
        csv, users = write_users(workdir, args.users)
        servers = {
            "peerline": lambda: peerline_server(workdir, users),
            "kamailio": lambda: kamailio_server(workdir),
        }
        for name in wanted:
            with servers[name]() as server:
                results.append(measure(server, csv, workdir, args))
    print()
    print(
        f"{'':10} {'REGISTER/s':>11} {'CPU us/REG':>11} {'calls/s':>9} {'CPU us/call':>12} "
        f"{'bytes/reg':>10}"
    )
    for r in results:
        print(
            f"{r.name:10} {r.register_rate!s:>11} {r.cpu_us_per_register:>11.1f} "
            f"{r.call_rate!s:>9} {r.cpu_us_per_call:>12.1f} {r.bytes_per_registration:>10.0f}"
        )
    for r in results:
        if r.reported_bytes_per_registration is not None:
            print(
                f"({r.name} itself reports {r.reported_bytes_per_registration:.0f} bytes of "
                "shared memory per registration)"
            )
    if len(results) != 2 or results[0].name != "peerline":
        return 0
    ours, theirs = results
    print()
    print("peerline / kamailio:")
    # A floor makes a ratio a bound: "at most" when Kamailio's figure is one.
    ratios: list[tuple[str, float, float, bool, bool]] = [
        ("REGISTER/s", ours.register_rate.rate, theirs.register_rate.rate,
         ours.register_rate.floor, theirs.register_rate.floor),
        ("CPU per REGISTER", ours.cpu_us_per_register, theirs.cpu_us_per_register, False, False),
        ("calls/s", ours.call_rate.rate, theirs.call_rate.rate,
         ours.call_rate.floor, theirs.call_rate.floor),
        ("CPU per call", ours.cpu_us_per_call, theirs.cpu_us_per_call, False, False),
        ("memory per binding", ours.bytes_per_registration, theirs.bytes_per_registration,
         False, False),
    ]  # fmt: skip
    notes = {
        (True, False): "  (at least: peerline's figure is sipp's limit)",
        (False, True): "  (at most: kamailio's figure is sipp's limit, not its own)",
        (True, True): "  (both figures are sipp's limit: no ratio)",
    }
    for label, mine, other, our_floor, their_floor in ratios:
        ratio = mine / other if other else float("nan")
        print(f"  {label:20} {ratio:6.2f}{notes.get((our_floor, their_floor), '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
