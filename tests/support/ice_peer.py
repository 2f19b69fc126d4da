"""One ICE peer for lab tests: run inside a lab namespace, signal through files.

    python -m tests.support.ice_peer --role controlling --out a.txt --in b.txt \
        --stun 203.0.113.1:3478 --turn turn:203.0.113.1:3478 --user U --password P

It gathers, writes its local description to `--out` (atomically), waits for the
other side's at `--in`, connects, sends `--count` numbered datagrams (again and
again until the peer has them all), and prints one JSON object: the selected
path, how many of the peer's datagrams arrived, and whether the peer said it
had all of ours, how its NAT maps and what the birthday technique did
(`--no-birthday` turns it off; `--birthday-ports`, `-probes` and `-budget`
bound it). Every wait is bounded; a failure prints `connected: false` with the
reason and exits 1.

`run_pair` starts two of them in a lab and returns their JSON (for lab tests
and benchmarks); `serve_args` and `peer_server_args` are the supernode on the
lab's `server` that they use, and `lab_with_serve` a lab with it running.
`run_drivers`, `read_when_there`, `write_atomically`, `Counter` and
`exchange_datagrams` are shared with `tests.support.aioice_peer`.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from peerline.ice.aio import IceTransport
from peerline.ice.birthday import BirthdayConfig
from peerline.ice.config import Role
from peerline.ice.gather import IceTransportConfig, parse_stun_uri, parse_turn_uri
from peerline.lab.lab import Lab, teardown
from peerline.lab.programs import start_serve
from peerline.lab.topology import Topology
from peerline.session.path import DatagramPath, PathInfo

MAX_KEPT = 10_000
MODULE = "tests.support.ice_peer"
ROOT = Path(__file__).resolve().parents[2]
SERVER_IP, ALT_IP = "203.0.113.1", "203.0.113.2"
USER, PASSWORD = "alice", "wonderland"


def serve_args(state_dir: Path, *, alt_ip: bool) -> list[str]:
    """`peerline serve` arguments for the lab's `server`: STUN (RFC 5780 on its two
    addresses with `alt_ip`) and TURN for USER, relaying inside the lab only."""
    args = ["--listen", SERVER_IP, *(("--alt-ip", ALT_IP) if alt_ip else ())]
    args += ["--tls-port", "0", "--sip-port", "0", "--sip-tls-port", "0", "--rate", "0"]
    args += ["--user", f"{USER}:{PASSWORD}", "--allow-peer", "203.0.113.0/24"]
    return [*args, "--state-dir", str(state_dir)]


def peer_server_args() -> list[str]:
    """This driver's arguments for that server's STUN and TURN."""
    servers = ["--stun", f"{SERVER_IP}:3478", "--turn", f"turn:{SERVER_IP}:3478"]
    return [*servers, "--user", USER, "--password", PASSWORD]


@contextlib.contextmanager
def lab_with_serve(
    topology: Topology, prefix: str, state_dir: Path, *, alt_ip: bool
) -> Iterator[Lab]:
    """`topology` up under `prefix` (whatever a killed run left there torn down
    first) with `peerline serve` (`serve_args`) on its `server`; all of it
    stopped and torn down after, whatever happens."""
    teardown(prefix)
    with Lab.up(topology, prefix=prefix) as lab:
        server = start_serve(lab, "server", serve_args(state_dir, alt_ip=alt_ip))
        try:
            assert server.running, server.startup
            yield lab
        finally:
            server.stop()


class Counter:
    """A PathListener that keeps every datagram of the peer (they are all distinct)."""

    def __init__(self) -> None:
        self.got: set[bytes] = set()
        self.lost: list[str] = []

    def datagram_received(self, data: bytes) -> None:
        if len(self.got) < MAX_KEPT:
            self.got.add(data)

    def path_changed(self, info: PathInfo) -> None:
        pass

    def path_lost(self, reason: str) -> None:
        self.lost.append(reason)


async def exchange_datagrams(
    path: DatagramPath,
    counter: Counter,
    tags: tuple[str, str],
    round_number: int,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    """Send ours until the peer has them all and said so; how many of its arrived.
    `tags` name our datagrams and the peer's (aioice_peer: the names of the signalling
    files, since roles may swap in a role conflict); each round has its own datagrams."""
    ours = [f"{tags[0]} {round_number} {n}".encode() for n in range(count)]
    theirs = {f"{tags[1]} {round_number} {n}".encode() for n in range(count)}
    done, peer_done = (f"{tag} {round_number} done".encode() for tag in tags)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not (counter.got >= theirs and peer_done in counter.got):
                for data in ours:
                    path.send(data)
                if counter.got >= theirs:
                    path.send(done)
                await asyncio.sleep(0.1)
    for _ in range(5):  # the peer may not have heard our last `done`
        path.send(done)
        await asyncio.sleep(0.05)
    return {
        "received": len(counter.got & theirs),
        "peer_done": peer_done in counter.got,
        "strangers": sum(1 for data in counter.got if not data.startswith(tags[1].encode())),
        "lost": list(counter.lost),
    }


async def read_when_there(path: Path, timeout: float, poll: float = 0.05) -> str:
    """The other side's description, once its file is there (written atomically)."""
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(poll)
    return path.read_text()


def write_atomically(path: Path, text: str) -> None:
    """So that the other side never reads half a description."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = IceTransportConfig(
        stun_servers=tuple(parse_stun_uri(s) for s in args.stun),
        turn_servers=tuple(parse_turn_uri(t, args.user, args.password) for t in args.turn),
        include_loopback=False,
        birthday=BirthdayConfig(
            enabled=args.birthday,
            ports=args.birthday_ports,
            probes=args.birthday_probes,
            budget=args.birthday_budget,
        ),
    )
    role = Role.CONTROLLING if args.role == "controlling" else Role.CONTROLLED
    counter = Counter()
    loop = asyncio.get_running_loop()
    async with IceTransport(config, role=role, listener=counter, name=args.role) as ice:
        started = loop.time()
        await ice.gathered(args.timeout)
        write_atomically(args.out, ice.local_description())
        remote = await read_when_there(args.inp, args.timeout)
        await asyncio.sleep(args.late)  # as when a person carries the answer back
        ice.set_remote_description(remote)
        exchanged = loop.time()
        info = await ice.connected(args.timeout)
        connected_after = loop.time() - started
        connect_s = loop.time() - exchanged
        peer_role = "controlled" if role is Role.CONTROLLING else "controlling"
        tags = (args.role, peer_role)
        traffic = await exchange_datagrams(ice, counter, tags, 1, args.count, args.timeout)
        return {
            "connected": True,
            "local_type": info.local_type,
            "remote_type": info.remote_type,
            "local_address": info.local_address,
            "remote_address": info.remote_address,
            "relayed": info.relayed,
            "setup_s": round(connected_after, 3),
            "connect_s": round(connect_s, 3),
            "mapping": ice.local_mapping.value,
            "birthday": None if ice.birthday is None else ice.birthday.as_dict(),
            "server_failures": ice.server_failures,
            **traffic,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=("controlling", "controlled"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--in", dest="inp", type=Path, required=True)
    parser.add_argument("--stun", action="append", default=[])
    parser.add_argument("--turn", action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--no-birthday", dest="birthday", action="store_false")
    parser.add_argument("--late", type=float, default=0.0, help="s before using the peer's")
    defaults = BirthdayConfig()
    parser.add_argument("--birthday-ports", type=int, default=defaults.ports)
    parser.add_argument("--birthday-probes", type=int, default=defaults.probes)
    parser.add_argument("--birthday-budget", type=float, default=defaults.budget)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        result = asyncio.run(run(args))
    except Exception as error:  # report any failure as data for the test to show
        print(json.dumps({"connected": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


def run_drivers(
    lab: Lab,
    module: str,
    directory: Path,
    hosts: Sequence[str],
    args: Sequence[Sequence[str]],
    timeout: float,
) -> list[tuple[str, str]]:
    """`python -m module` on each of the two `hosts` with its `args`, the two
    descriptions crossing through files in `directory` (`--out` its own, `--in`
    the other's); each one's (stdout, stderr), in order. Both processes are
    stopped (by pid) whatever happens."""
    files = [directory / "a.txt", directory / "b.txt"]
    for file in files:
        file.unlink(missing_ok=True)
    processes: list[subprocess.Popen[str]] = []
    try:
        for index, (host, extra) in enumerate(zip(hosts, args, strict=True)):
            argv = [sys.executable, "-m", module, "--out", str(files[index])]
            argv += ["--in", str(files[1 - index]), *extra]
            processes.append(
                lab.popen(
                    host, argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        return [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


def run_pair(
    lab: Lab,
    tmp: Path,
    host_a: str,
    host_b: str,
    servers: Sequence[str],
    *,
    extra: Sequence[str] = (),
    extra_a: Sequence[str] = (),
    timeout: float = 90.0,
) -> list[dict[str, Any]]:
    """A controlling peer on `host_a` and a controlled one on `host_b`, each with
    the `servers` and `extra` arguments (and `extra_a` for `host_a` alone); their
    JSON, in that order. Both are stopped (by pid) whatever happens."""
    args = [
        ["--role", "controlling", *servers, *extra, *extra_a],
        ["--role", "controlled", *servers, *extra],
    ]
    results = []
    outputs = run_drivers(lab, MODULE, tmp, (host_a, host_b), args, timeout)
    for host, (out, err) in zip((host_a, host_b), outputs, strict=True):
        if not out.strip():
            raise AssertionError(f"the peer on {host} printed nothing: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


if __name__ == "__main__":
    sys.exit(main())
