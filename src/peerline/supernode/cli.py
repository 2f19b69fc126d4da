"""`peerline serve`: run this node as a supernode."""

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from peerline import aio
from peerline.supernode.config import ServeConfig, build_config, read_config_file
from peerline.supernode.server import Supernode


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a supernode: STUN (RFC 5780 with --alt-ip), TURN relay, SIP registrar/proxy",
        description=(
            "Run this node as a supernode: a STUN server over UDP, TCP and TLS, IPv4 and "
            "IPv6. With --alt-ip it also answers RFC 5780 NAT behaviour discovery from "
            "two addresses and two ports. Given users (--user, --users-file) it is also "
            "the SIP registrar and stateful proxy of --domain over UDP, TCP, TLS and "
            "WebSocket, keeping phones behind NATs reachable over the flows they "
            "registered on. Stops cleanly on Ctrl-C or SIGTERM."
        ),
        epilog=(
            "examples:\n"
            "  peerline serve\n"
            "  peerline serve --listen 203.0.113.1 --alt-ip 203.0.113.2\n"
            "  peerline serve --listen 127.0.0.1 --stun-port 3478 --tls-port 0\n"
            "  peerline serve --config /etc/peerline/serve.toml\n"
            "  peerline serve --domain example.org --user alice:secret1 --user bob:secret2\n"
            "  peerline serve --domain example.org --users-file users.txt --sip-ws-port 8080"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file with the same settings (flags win)"
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="IP",
        help="address to listen on (repeatable; default: every address of this host)",
    )
    parser.add_argument("--stun-port", metavar="PORT", help="STUN over UDP and TCP (default 3478)")
    parser.add_argument("--tls-port", metavar="PORT", help="STUN over TLS (default 5349; 0 = off)")
    parser.add_argument(
        "--alt-ip",
        metavar="IP",
        help="a second address of this host: enables RFC 5780 behaviour discovery",
    )
    parser.add_argument("--alt-port", metavar="PORT", help="RFC 5780 second port (default +1)")
    parser.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="certificate (default: self-signed)"
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    parser.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="where the node keeps its own files"
    )
    parser.add_argument(
        "--rate", type=float, metavar="N", help="responses/s per source address (0 = no limit)"
    )
    parser.add_argument("--burst", type=float, metavar="N", help="burst per source address")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="a TURN/SIP user (repeatable; NAME:md5:HA1 stores no password)",
    )
    parser.add_argument(
        "--users-file", type=Path, metavar="FILE", help="users, one NAME:PASSWORD a line"
    )
    parser.add_argument(
        "--realm", metavar="REALM", help="digest realm (default: the domain, else peerline)"
    )
    parser.add_argument(
        "--domain", metavar="DOMAIN", help="SIP domain of the registrar (default: the realm)"
    )
    parser.add_argument(
        "--sip-port", metavar="PORT", help="SIP registrar/proxy over UDP and TCP (default 5060)"
    )
    parser.add_argument("--sip-tls-port", metavar="PORT", help="SIP over TLS (default 5061)")
    parser.add_argument(
        "--sip-ws-port", metavar="PORT", help="SIP over WebSocket (off by default; RFC 7118)"
    )
    parser.add_argument(
        "--sip-wss-port", metavar="PORT", help="SIP over secure WebSocket, wss:// (off by default)"
    )
    parser.add_argument(
        "--sip-digest",
        metavar="ALGS",
        help="digest algorithms offered, preferred first (default SHA-256,MD5)",
    )
    turn = parser.add_argument_group(
        "TURN relay (on when --user, --users-file or --auth-secret is given)"
    )
    turn.add_argument(
        "--auth-secret",
        metavar="SECRET",
        help="TURN REST-API secret: username EXPIRY:NAME, password "
        "base64(HMAC-SHA1(SECRET, username))",
    )
    turn.add_argument(
        "--allow-peer",
        action="append",
        default=[],
        metavar="CIDR",
        help="relay to this network although it is special-purpose (loopback, RFC 1918, "
        "this server...); repeatable; default: none",
    )
    turn.add_argument(
        "--turn-max-allocations", metavar="N", help="allocations in all (default 10000)"
    )
    turn.add_argument("--turn-user-quota", metavar="N", help="allocations per user (default 100)")
    turn.add_argument(
        "--turn-bandwidth",
        metavar="BYTES",
        help="bytes/s per allocation, both ways (default 1250000; 0 = no cap)",
    )
    parser.add_argument(
        "--metrics-port", metavar="PORT", help="Prometheus text at /metrics (default 0 = off)"
    )
    parser.add_argument(
        "--metrics-listen", metavar="IP", help="address of --metrics-port (default 127.0.0.1)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every refusal")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    file_values = read_config_file(args.config) if args.config else {}
    flags = {
        "listen": args.listen,
        "stun_port": args.stun_port,
        "tls_port": args.tls_port,
        "alt_ip": args.alt_ip,
        "alt_port": args.alt_port,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "state_dir": args.state_dir,
        "rate": args.rate,
        "burst": args.burst,
        "user": args.user,
        "users_file": args.users_file,
        "realm": args.realm,
        "domain": args.domain,
        "sip_port": args.sip_port,
        "sip_tls_port": args.sip_tls_port,
        "sip_ws_port": args.sip_ws_port,
        "sip_wss_port": args.sip_wss_port,
        "sip_digest": args.sip_digest,
        "auth_secret": args.auth_secret,
        "allow_peer": args.allow_peer,
        "turn_max_allocations": args.turn_max_allocations,
        "turn_user_quota": args.turn_user_quota,
        "turn_bandwidth": args.turn_bandwidth,
        "metrics_port": args.metrics_port,
        "metrics_listen": args.metrics_listen,
    }
    return build_config(file_values, flags)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    config = config_from_args(args)
    return aio.run(serve_until_signal(config))


async def serve_until_signal(config: ServeConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    node = Supernode(config)
    await node.start()
    for line in node.describe():
        print(line, flush=True)
    print("serving; Ctrl-C to stop", flush=True)
    await stop.wait()
    await node.stop()
    print("stopped", flush=True)
    return 0
