"""ICE setup time, peerline vs aioice, and QUIC bulk throughput vs raw UDP, in the NAT lab.

    .venv/bin/python bench/bench_ice.py [--runs 10] [--delay 25] [--megabytes 10]

Builds the `pair` lab (prefix plbice-; nat-a port-restricted cone, nat-b full
cone by default) with `--delay` ms added in each direction of every access link,
so peer-a and peer-b each see 4 x delay of round trip to the server and to each
other (both cross two access links each way; 100 ms at the default, measured with
ping and printed). `peerline serve` on `server` is the STUN server of both. Then,
`--runs` times each, interleaved so that background load falls on both alike, both
peers run the same ICE implementation (`tests.support.aioice_peer` in each
namespace, signalling through files) and the same `PeerSession` over it:

- nominated pair: from both descriptions applied (the later of the two sides) to
  both sides holding a nominated, selected pair (aioice: `connect()` returned);
- first QUIC byte: from the same instant to the QUIC server reading the first
  byte the client wrote on a stream (the handshake included): the session and
  QUIC are the same on both sides, so the difference is ICE's alone.

`--eager` adds peerline with `nomination_delay` 0, to show what the wait for a
better pair costs. Over the peerline runs, `--megabytes` go peer-a -> peer-b on
a QUIC stream (SHA-256 checked); then a raw UDP blast on the same path
(bench/ice_udp_blast.py: the same NATs and delay lines, a hole punched the same
way) searches, within bounds, for the highest paced rate that loses < 1 %; the
ratio of QUIC's median goodput to that is printed. Prints medians, p90s and the
peerline/aioice ratios. Needs root; traffic stays inside the lab's namespaces.
"""

import argparse
import json
import math
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.aioice_peer, the driver both sides run

from tests.support.aioice_peer import run_pair  # noqa: E402

from peerline.lab import builder, builtin  # noqa: E402
from peerline.lab.lab import Lab, teardown  # noqa: E402
from peerline.lab.profiles import LinkShape, parse_nat  # noqa: E402
from peerline.lab.programs import start_serve  # noqa: E402

PREFIX = "plbice-"
SERVER = "203.0.113.1"
LOSS_LIMIT_PCT = 1.0
UDP_PORTS = (7301, 7300)  # peer-a's, peer-b's
DATAGRAM = 1200


@dataclass(frozen=True)
class Variant:
    name: str
    impl: str
    extra: tuple[str, ...] = ()


PEERLINE = Variant("peerline", "peerline")
AIOICE = Variant("aioice", "aioice")
EAGER = Variant("peerline, no wait", "peerline", ("--nomination-delay", "0"))


@dataclass
class Samples:
    ice_ms: list[float] = field(default_factory=list)
    quic_ms: list[float] = field(default_factory=list)
    mbps: list[float] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def describe_path(client: dict[str, Any], server: dict[str, Any]) -> str:
    a, b = client["path"], server["path"]
    return f"a {a['local_type']}->{a['remote_type']}, b {b['local_type']}->{b['remote_type']}"


def one_run(lab: Lab, work: Path, variant: Variant, bulk_mb: float, samples: Samples) -> None:
    args = ["--impl", variant.impl, "--stun", f"{SERVER}:3478", "--mode", "quic", *variant.extra]
    if bulk_mb:
        args += ["--bulk-mb", f"{bulk_mb:g}"]
    client, server = run_pair(
        lab,
        work,
        [*args, "--role", "controlling"],
        [*args, "--role", "controlled"],
        timeout=120,
    )
    for report in (client, server):
        if not report.get("connected") or "error" in report:
            samples.failures.append(report.get("error", "not connected"))
            return
    applied = max(client["applied_at"], server["applied_at"])
    samples.ice_ms.append(1000 * (max(client["connected_at"], server["connected_at"]) - applied))
    samples.quic_ms.append(1000 * (server["first_byte_at"] - applied))
    samples.paths.add(describe_path(client, server))
    if bulk_mb:
        if not client["bulk"]["verified"]:
            samples.failures.append("bulk data damaged")
        else:
            samples.mbps.append(server["bulk"]["mbps"])


def ping_ms(lab: Lab, host: str, target: str) -> float | None:
    done = lab.run(host, ["ping", "-c", "5", "-i", "0.2", "-q", target], timeout=30)
    found = re.search(r"= [\d.]+/([\d.]+)/", done.stdout)
    return float(found.group(1)) if found else None


def udp_blast(lab: Lab, count: int, mbit: float) -> tuple[float, float]:
    """(goodput Mbit/s, % lost) of `count` datagrams peer-a -> peer-b paced at `mbit`."""
    script = str(ROOT / "bench" / "ice_udp_blast.py")
    a_public, b_public = lab.public_address("peer-a"), lab.public_address("peer-b")
    receiver = lab.popen(
        "peer-b",
        [
            *(sys.executable, script, "receive", "--port", str(UDP_PORTS[1])),
            *("--peer", f"{a_public}:{UDP_PORTS[0]}", "--count", str(count)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sender = [sys.executable, script, "send", "--port", str(UDP_PORTS[0])]
        sender += ["--peer", f"{b_public}:{UDP_PORTS[1]}", "--count", str(count)]
        sender += ["--size", str(DATAGRAM), "--mbit", f"{mbit:g}"]
        lab.run("peer-a", sender, timeout=120, check=True)
        output, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    report = json_line(output)
    goodput = report["received"] * DATAGRAM * 8 / max(report["seconds"], 1e-9) / 1e6
    return goodput, 100 * (1 - report["received"] / count)


def json_line(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    if not lines:
        raise SystemExit("the UDP receiver printed nothing")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def best_udp(lab: Lab, megabytes: float, start: float, ceiling: float) -> tuple[float, float]:
    """The highest pace (Mbit/s) losing < 1 % and its goodput: doubling, then bisection,
    at most 10 blasts."""
    count = int(megabytes * 1_000_000 / DATAGRAM)
    best = (0.0, 0.0)
    low, high, rate = 0.0, None, start
    for _ in range(10):
        goodput, lost = udp_blast(lab, count, rate)
        ok = lost < LOSS_LIMIT_PCT
        print(
            f"    UDP at {rate:7.1f} Mbit/s: goodput {goodput:7.1f}, lost {lost:5.2f} %", flush=True
        )
        if ok:
            low, best = rate, (rate, goodput)
        else:
            high = rate
        if high is None:
            if rate >= ceiling:
                break
            rate = min(2 * rate, ceiling)
        else:
            if high - low < 0.1 * high:
                break
            rate = (low + high) / 2
    return best


def line_drops(lab: Lab) -> dict[str, int]:
    """Packets the NATs' delay lines dropped so far (queue or socket full)."""
    drops = {}
    for host in ("nat-a", "nat-b"):
        counters = builder.delay_queue(lab.namespace(host))
        if counters is not None:
            drops[host] = counters.dropped_full + counters.dropped_socket
    return drops


def row(name: str, values: dict[str, list[float]], unit: str) -> str:
    cells = [
        f"{statistics.median(samples):9.0f} {p90(samples):7.0f}" if samples else f"{'-':>17}"
        for samples in values.values()
    ]
    return f"  {name:<22}" + "   ".join(cells) + f"   {unit}"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def git_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="repetitions of each (K)")
    parser.add_argument("--delay", type=float, default=25.0, help="ms per access link, one way")
    parser.add_argument("--megabytes", type=float, default=10.0, help="bulk size (0: no bulk)")
    parser.add_argument("--nat-a", default="port-restricted-cone")
    parser.add_argument("--nat-b", default="full-cone")
    parser.add_argument("--eager", action="store_true", help="add peerline, nomination_delay 0")
    parser.add_argument("--udp-start", type=float, default=50.0, help="first UDP pace, Mbit/s")
    parser.add_argument("--udp-max", type=float, default=3200.0, help="highest UDP pace, Mbit/s")
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be 1-100")
    variants = [PEERLINE, AIOICE] + ([EAGER] if args.eager else [])
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  kernel {platform.release()}")
    print(
        f"peerline {git_revision()}, aioice {version('aioice')}, aioquic {version('aioquic')}, "
        f"Python {platform.python_version()}"
    )
    topology = builtin.pair(parse_nat(args.nat_a), parse_nat(args.nat_b))
    topology = topology.with_access_links(LinkShape(delay_ms=args.delay))
    samples = {variant.name: Samples() for variant in variants}
    teardown(PREFIX)
    with tempfile.TemporaryDirectory() as scratch, Lab.up(topology, prefix=PREFIX) as lab:
        server = start_serve(
            lab,
            "server",
            [
                *("--listen", SERVER, "--tls-port", "0", "--sip-port", "0"),
                *("--sip-tls-port", "0", "--rate", "0", "--state-dir", f"{scratch}/serve"),
            ],
        )
        try:
            if not server.running:
                raise SystemExit(f"peerline serve did not start: {server.startup}")
            to_server = ping_ms(lab, "peer-a", SERVER)
            to_peer = ping_ms(lab, "peer-a", lab.public_address("peer-b"))
            print(
                f"lab pair: nat-a {args.nat_a}, nat-b {args.nat_b}, {args.delay:g} ms each way "
                f"on every access link; ping RTT peer-a -> server {to_server} ms, "
                f"peer-a -> nat-b (peer-b's public side) {to_peer} ms"
            )
            print(f"{args.runs} runs of each, interleaved", flush=True)
            work = Path(scratch)
            for index in range(args.runs):
                order = variants if index % 2 == 0 else variants[::-1]
                for variant in order:
                    bulk = args.megabytes if variant is PEERLINE else 0.0
                    one_run(lab, work, variant, bulk, samples[variant.name])
                print(f"  run {index + 1}/{args.runs} done", flush=True)
            after_quic = line_drops(lab)
            udp = (0.0, 0.0)
            if args.megabytes:
                udp = best_udp(lab, args.megabytes, args.udp_start, args.udp_max)
            after_udp = line_drops(lab)
            print(
                "  delay-line drops: "
                + ", ".join(
                    f"{host} {count} during the QUIC runs, "
                    f"{after_udp.get(host, 0) - count} during the UDP search"
                    for host, count in after_quic.items()
                )
            )
        finally:
            server.stop()
    report(args, samples, udp)
    return 0 if not any(s.failures for s in samples.values()) else 1


def report(args: argparse.Namespace, samples: dict[str, Samples], udp: tuple[float, float]) -> None:
    names = list(samples)
    print()
    print(f"  {'from both applied':<22}" + "   ".join(f"{n[:17]:>17}" for n in names))
    print(f"  {'':<22}" + "   ".join(f"{'median':>9} {'p90':>7}" for _ in names))
    print(row("to nominated pair", {n: s.ice_ms for n, s in samples.items()}, "ms"))
    print(row("to first QUIC byte", {n: s.quic_ms for n, s in samples.items()}, "ms"))
    for name, sample in samples.items():
        paths = "; ".join(sorted(sample.paths)) or "none"
        print(f"  {name}: selected {paths}; failures {len(sample.failures)} {sample.failures[:3]}")
    if EAGER.name in samples:
        print(f"  ({EAGER.name}: nomination_delay 0, the best valid pair is nominated at once)")
    ours, theirs = samples[PEERLINE.name], samples[AIOICE.name]
    for what, a, b in (
        ("nominated pair", ours.ice_ms, theirs.ice_ms),
        ("first QUIC byte", ours.quic_ms, theirs.quic_ms),
    ):
        if a and b:
            ratio = statistics.median(a) / statistics.median(b)
            print(f"  peerline/aioice, {what} (medians): {ratio:.2f}")
    if args.megabytes and ours.mbps:
        quic = statistics.median(ours.mbps)
        print(
            f"  {args.megabytes:g} MB peer-a -> peer-b over peerline ICE + QUIC: median "
            f"{quic:.1f} Mbit/s (range {min(ours.mbps):.1f}-{max(ours.mbps):.1f}, "
            f"{len(ours.mbps)} runs, SHA-256 checked)"
        )
        rate, goodput = udp
        bound = " (the sender could not keep the pace)" if goodput < 0.9 * rate else ""
        print(
            f"  raw UDP on the same path: {goodput:.1f} Mbit/s goodput at {rate:.1f} Mbit/s "
            f"paced, < {LOSS_LIMIT_PCT:g} % lost{bound}"
        )
        if goodput:
            print(f"  QUIC / raw UDP throughput: {quic / goodput:.2f}")


if __name__ == "__main__":
    sys.exit(main())
