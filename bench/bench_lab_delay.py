"""Bulk traffic through the lab's `--delay` delay line, against the same link undelayed.

    .venv/bin/python bench/bench_lab_delay.py [--delay 25] [--rate 50] [--megabytes 10]

Builds the `pair` lab (prefix pldl-) twice, once with `--rate R` alone and once with
`--rate R --delay D`, and moves `--megabytes` from peer-a to the server (through two
access links, nat-a's and the server's, each with its delay line) over:

- TCP: one connection, the time from connect to the server's "got it all";
- UDP: 1200-byte datagrams paced at 95 % of the rate (`--udp-mbit` when unlimited;
  QUIC-like, no GSO), goodput from first to last datagram and the share lost.

For the delayed runs it prints the CPU the delay lines used (per host, as a share of
one core over the transfer), how many packets their queues held, and what they
dropped. The ratio delayed/undelayed
is the figure: with TCP it also pays the slow start over a longer RTT; with paced UDP
it should be 1.00 with no loss if the delay line keeps up. Needs root; traffic stays
inside the lab's namespaces.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

from bench_stun import cpu_seconds  # the same CPU reading as the other benchmarks
from peerline.lab import builder, builtin
from peerline.lab.lab import Lab, teardown
from peerline.lab.profiles import LinkShape

PREFIX = "pldl-"
SERVER = "203.0.113.1"
PORT = 7200
DATAGRAM = 1200

TCP_RECEIVER = """
import socket, sys
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
listener.settimeout(60)
connection, _ = listener.accept()
connection.settimeout(60)
total = 0
while chunk := connection.recv(1 << 20):
    total += len(chunk)
connection.sendall(str(total).encode())
connection.close()
"""

TCP_SENDER = """
import json, socket, sys, time
size = int(sys.argv[3])
payload = bytes(1 << 20)
start = time.monotonic()
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
sent = 0
while sent < size:
    sent += sock.send(payload[: min(len(payload), size - sent)])
sock.shutdown(socket.SHUT_WR)
received = int(sock.recv(64))
print(json.dumps({"seconds": time.monotonic() - start, "bytes": received}))
"""

UDP_RECEIVER = """
import json, select, socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, 33, 64 * 1024 * 1024)
sock.bind((sys.argv[1], int(sys.argv[2])))
count = int(sys.argv[3])
print("ready", flush=True)
got, first, last = 0, None, None
while got < count and select.select([sock], [], [], 3.0)[0]:
    sock.recv(65536)
    last = time.monotonic()
    first = first or last
    got += 1
print(json.dumps({"received": got, "seconds": (last or 0) - (first or 0)}))
"""

UDP_SENDER = """
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
count, size, mbit = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
interval = size * 8 / (mbit * 1e6)
payload = bytes(size)
start = time.monotonic()
sent = 0
while sent < count:
    owed = min(count, int((time.monotonic() - start) / interval) + 1)
    while sent < owed:
        sock.sendto(payload, (ip, port))
        sent += 1
    time.sleep(0.0005)
"""


@dataclass
class Result:
    mbit_s: float
    loss_pct: float
    cpu: dict[str, float]
    queues: dict[str, builder.QueueCounters | None]


def delay_lines(lab: Lab) -> dict[str, int]:
    """One delay-line pid per host that has one."""
    found = {host: builder.delay_line_pids(lab.namespace(host)) for host in lab.hosts}
    return {host: pids[0] for host, pids in found.items() if pids}


def transfer(lab: Lab, transport: str, size: int, pace: float) -> tuple[float, float]:
    """Mbit/s of goodput and the percentage lost, peer-a -> server."""
    count = size // DATAGRAM
    receiver_args = [SERVER, str(PORT)] + ([str(count)] if transport == "udp" else [])
    script = TCP_RECEIVER if transport == "tcp" else UDP_RECEIVER
    receiver = lab.popen(
        "server",
        [sys.executable, "-c", script, *receiver_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise SystemExit("the receiver did not start")
        if transport == "tcp":
            sender = [sys.executable, "-c", TCP_SENDER, SERVER, str(PORT), str(size)]
            done = lab.run("peer-a", sender, timeout=120, check=True)
            report = json.loads(done.stdout)
            receiver.wait(timeout=30)
            return size * 8 / report["seconds"] / 1e6, 100 * (1 - report["bytes"] / size)
        sender = [sys.executable, "-c", UDP_SENDER, SERVER, str(PORT), str(count)]
        lab.run("peer-a", [*sender, str(DATAGRAM), f"{pace:g}"], timeout=120, check=True)
        output, _ = receiver.communicate(timeout=60)
        report = json.loads(output)
        goodput = report["received"] * DATAGRAM * 8 / max(report["seconds"], 1e-9) / 1e6
        return goodput, 100 * (1 - report["received"] / count)
    finally:
        if receiver.poll() is None:
            receiver.kill()
        receiver.communicate()


def run(delay: float, rate: float, transport: str, size: int, pace: float) -> Result:
    teardown(PREFIX)
    topology = builtin.pair().with_access_links(LinkShape(delay_ms=delay, rate_mbit=rate))
    with Lab.up(topology, prefix=PREFIX) as lab:
        lines = delay_lines(lab)
        before = {host: cpu_seconds(pid) for host, pid in lines.items()}
        start = time.monotonic()
        mbit_s, loss = transfer(lab, transport, size, pace)
        elapsed = time.monotonic() - start
        cpu = {host: (cpu_seconds(pid) - before[host]) / elapsed for host, pid in lines.items()}
        queues = {host: builder.delay_queue(lab.namespace(host)) for host in lines}
    return Result(mbit_s, loss, cpu, queues)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=25.0, help="ms per access link")
    parser.add_argument("--rate", type=float, default=50.0, help="Mbit/s, 0: unlimited")
    parser.add_argument("--megabytes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=1, help="repetitions; the best is kept")
    parser.add_argument(
        "--udp-mbit", type=float, default=200.0, help="UDP pace when --rate is 0 (Mbit/s)"
    )
    args = parser.parse_args()
    pace = 0.95 * args.rate if args.rate else args.udp_mbit
    size = int(args.megabytes * 1_000_000)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  kernel {platform.release()}")
    what = f"rate {args.rate:g} Mbit/s, delay {args.delay:g} ms"
    print(f"{args.megabytes:g} MB peer-a -> server, {what}")
    for transport in ("tcp", "udp"):
        best: dict[float, Result] = {}
        for delay in (0.0, args.delay):
            for _ in range(args.runs):
                result = run(delay, args.rate, transport, size, pace)
                if delay not in best or result.mbit_s > best[delay].mbit_s:
                    best[delay] = result
            result = best[delay]
            cpu = ", ".join(f"{host} {share:.0%}" for host, share in result.cpu.items())
            queues = ", ".join(
                f"{host} {q.queued}/{q.dropped_full}/{q.dropped_socket}" if q else f"{host} none"
                for host, q in result.queues.items()
            )
            print(
                f"  {transport}  delay {delay:>4g} ms: {result.mbit_s:7.1f} Mbit/s, "
                f"lost {result.loss_pct:.2f} %"
                + (
                    f"; delay-line CPU {cpu}; queued/dropped full/dropped socket {queues}"
                    if cpu
                    else ""
                )
            )
        ratio = best[args.delay].mbit_s / best[0.0].mbit_s
        print(f"  {transport}  delayed / undelayed throughput: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
