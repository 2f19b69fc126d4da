"""Raw UDP between two peers behind NATs, the baseline of bench/bench_ice.py.

    python bench/ice_udp_blast.py receive --port 7300 --peer 203.0.113.10:7301 --count N
    python bench/ice_udp_blast.py send --port 7301 --peer 203.0.113.20:7300 --count N --mbit R

Run in two lab namespaces. First the two punch a hole the way ICE would: each
sends small handshake datagrams to the other's public address (its NAT's, at
the port it binds, which port-preserving NATs keep) and, as soon as it hears
the other, answers wherever that came from. When the sender hears that the
receiver heard it, it sends `--count` datagrams of `--size` bytes paced at
`--mbit` Mbit/s (no GSO: one sendto each, as QUIC does). The receiver prints
one JSON object: datagrams received, and the seconds from the first to the last.
Every wait is bounded.
"""

import argparse
import json
import select
import socket
import sys
import time

from peerline.net import split_host_port

HELLO, HEARD = b"s", b"r"
DATA = b"d"
HANDSHAKE_S = 10.0
SILENCE_S = 2.0


def open_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    sock.bind(("0.0.0.0", port))
    return sock


def receive(args: argparse.Namespace) -> dict[str, float]:
    sock = open_socket(args.port)
    target = split_host_port(args.peer, 0)
    heard = False
    got, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + HANDSHAKE_S
    while got == 0 and time.monotonic() < deadline:
        sock.sendto(HEARD + (b"1" if heard else b"0"), target)
        while select.select([sock], [], [], 0.02)[0]:
            data, source = sock.recvfrom(65536)
            if data.startswith(DATA):
                got, first = 1, time.monotonic()
                last = first
                break
            if data == HELLO:
                heard, target = True, source
    while got and got < args.count and select.select([sock], [], [], SILENCE_S)[0]:
        data = sock.recv(65536)
        if data.startswith(DATA):
            got += 1
            last = time.monotonic()
    return {"received": got, "seconds": last - first}


def send(args: argparse.Namespace) -> dict[str, float]:
    sock = open_socket(args.port)
    target = split_host_port(args.peer, 0)
    deadline = time.monotonic() + HANDSHAKE_S
    ready = False
    while not ready and time.monotonic() < deadline:
        sock.sendto(HELLO, target)
        while select.select([sock], [], [], 0.02)[0]:
            data, source = sock.recvfrom(65536)
            if data.startswith(HEARD):
                target = source
                ready = ready or data == HEARD + b"1"
    if not ready:
        raise SystemExit("no hole punched within the handshake time")
    payload = DATA + bytes(args.size - 1)
    interval = args.size * 8 / (args.mbit * 1e6)
    start = time.monotonic()
    sent = 0
    while sent < args.count:
        due = min(args.count, int((time.monotonic() - start) / interval) + 1)
        while sent < due:
            sock.sendto(payload, target)  # a blocking socket: waits for room, never EAGAIN
            sent += 1
        time.sleep(0.0002)
    return {"sent": sent, "seconds": time.monotonic() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=("send", "receive"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--peer", required=True, help="the other side's public IP:PORT")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--mbit", type=float, default=100.0)
    args = parser.parse_args()
    result = send(args) if args.role == "send" else receive(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
