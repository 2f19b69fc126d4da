"""`peerline natcheck`: what stands between this host and the Internet."""

import argparse
import json
import os
import sys
from typing import Any

from peerline import aio
from peerline.errors import PeerlineError, UsageError
from peerline.nat.classify import classify
from peerline.nat.probe import ProbeConfig, probe_nat
from peerline.nat.report import render
from peerline.net import format_address, resolve, split_host_port

DEFAULT_STUN_PORT = 3478


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "natcheck",
        help="classify the NAT in front of this host (RFC 5780 tests)",
        description=(
            "Run the RFC 5780 behaviour-discovery tests against a STUN server with two "
            "addresses (`peerline serve --alt-ip`, or coturn) and report mapping, "
            "filtering, hairpinning, port preservation, ALGs, the binding lifetime "
            "(--lifetime), the classic NAT type and its group (A, B, D, F)."
        ),
        epilog=(
            "examples:\n"
            "  peerline natcheck --server stun.example.org\n"
            "  peerline natcheck --server 203.0.113.1:3478 --json\n"
            "  peerline natcheck --server [2001:db8::1] --lifetime"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        default=os.environ.get("PEERLINE_STUN_SERVER"),
        help="STUN server (default: $PEERLINE_STUN_SERVER; port 3478)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--lifetime", action="store_true", help="also measure the binding lifetime (slow)"
    )
    parser.add_argument(
        "--lifetime-max",
        type=float,
        default=300.0,
        metavar="S",
        help="longest lifetime to look for (default 300)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds to wait for the server (default 3)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.server:
        raise UsageError(
            "no STUN server: give --server HOST[:PORT] (a `peerline serve --alt-ip` node "
            "or any RFC 5780 server)"
        )
    if not 0.2 <= args.timeout <= 120:
        raise UsageError("--timeout must be between 0.2 and 120 seconds")
    host, port = split_host_port(args.server, DEFAULT_STUN_PORT)
    server = resolve(host, port)
    config = ProbeConfig(
        server=server,
        timeout=args.timeout,
        lifetime=args.lifetime,
        lifetime_max=args.lifetime_max,
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    if not args.json:
        progress(f"checking the NAT in front of this host with {format_address(server)}")
    try:
        observations = aio.run(probe_nat(config, progress))
    except OSError as error:
        raise PeerlineError(f"cannot reach {format_address(server)}: {error.strerror}") from None
    report = classify(observations)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print()
        for line in render(report):
            print(line)
    if not report.udp:
        print(
            f"peerline: error: no answer from {format_address(server)} within "
            f"{args.timeout:g} s (UDP blocked, or no STUN server there)",
            file=sys.stderr,
        )
        return 1
    return 0
