"""`peerline lab`: build, inspect, use and remove the NAT lab."""

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peerline.errors import UsageError
from peerline.lab import builtin, describe, netns, state, tools
from peerline.lab import matrix as matrix_module
from peerline.lab.lab import DEFAULT_PREFIX, Lab, check_can_build, teardown
from peerline.lab.profiles import LinkShape, NatSpec, Profile, parse_nat
from peerline.lab.topofile import load_file, to_dict
from peerline.lab.topology import Topology

_DESCRIPTION = """\
The NAT lab: hosts in Linux network namespaces behind real kernel NATs (nftables),
joined by veth links and a bridge that plays the Internet. Nothing in it touches the
machine's own interfaces. Needs root (CAP_NET_ADMIN).

  peerline lab up pair --nat-a full-cone --nat-b symmetric
  peerline lab exec peer-a -- ip -4 addr
  peerline lab down
"""


def nat_argument(text: str) -> NatSpec:
    """argparse type: our UsageError becomes argparse's one-line error."""
    try:
        return parse_nat(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _number(unit: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, not {text!r}") from None

    return parse


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser(
        "lab",
        help="the NAT lab (network namespaces + kernel NATs)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"names of the lab's namespaces start with this (default {DEFAULT_PREFIX})",
    )
    commands = parser.add_subparsers(title="lab commands", metavar="COMMAND")

    up = commands.add_parser("up", parents=[common], help="build a lab and keep it up")
    up.add_argument(
        "topology",
        metavar="TOPOLOGY",
        help="pair, same-nat, cgnat, or a topology file (.toml)",
    )
    nat = "PROFILE[,hairpin][,udp-timeout=S]"
    up.add_argument("--nat-a", type=nat_argument, metavar=nat, help="nat-a (home-a in cgnat)")
    up.add_argument("--nat-b", type=nat_argument, metavar=nat, help="nat-b (pair, cgnat)")
    up.add_argument("--cgn", type=nat_argument, metavar=nat, help="the carrier NAT (cgnat)")
    up.add_argument(
        "--delay",
        type=_number("milliseconds"),
        metavar="MS",
        help="one-way delay added in each direction of every link to the Internet (a "
        "userspace delay line on an NFQUEUE in each host; needs iptables, not netem)",
    )
    up.add_argument(
        "--loss",
        type=_number("percent"),
        metavar="PERCENT",
        help="share of packets dropped in each direction of every link to the Internet",
    )
    up.add_argument(
        "--rate",
        type=_number("Mbit/s"),
        metavar="MBIT",
        help="rate limit of each direction of every link to the Internet",
    )
    up.set_defaults(handler=_up)

    status = commands.add_parser("status", parents=[common], help="show the running lab")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    run = commands.add_parser(
        "exec",
        parents=[common],
        help="run a command in a host: peerline lab exec HOST -- COMMAND...",
    )
    run.add_argument("host", metavar="HOST")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    run.set_defaults(handler=_exec)

    down = commands.add_parser("down", parents=[common], help="remove the lab (idempotent)")
    down.set_defaults(handler=_down)

    profiles = commands.add_parser("profiles", help="list the NAT profiles and modifiers")
    profiles.set_defaults(handler=_profiles)

    matrix = commands.add_parser(
        "matrix",
        help="connect two peers across every pair of NAT profiles: the scoreboard",
        description=(
            "For every pair of NAT profiles (and same-nat with and without hairpin, and "
            "cgnat against each profile) build a lab with a supernode on server, connect "
            "peer-a and peer-b with `peerline offer`/`answer`, move --size MB of random "
            "data, check its SHA-256, and print the path chosen, the candidate types, the "
            "setup time and the throughput. Needs root; takes about 10 s a case."
        ),
        epilog=(
            "examples:\n"
            "  peerline lab matrix\n"
            "  peerline lab matrix --json > scoreboard.json\n"
            "  peerline lab matrix --only symmetric:port-restricted-cone --only cgnat:none\n"
            "  peerline lab matrix --delay 25 --loss 1 --size 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    matrix.add_argument("--json", action="store_true", help="print a JSON list, one object a case")
    matrix.add_argument(
        "--size", type=_number("megabytes"), default=10.0, metavar="MB", help="data per case (10)"
    )
    matrix.add_argument(
        "--only", action="append", default=[], metavar="A:B", help="run only this case (repeatable)"
    )
    matrix.add_argument("--delay", type=_number("milliseconds"), metavar="MS", help="as in up")
    matrix.add_argument("--loss", type=_number("percent"), metavar="PERCENT", help="as in up")
    matrix.add_argument("--rate", type=_number("Mbit/s"), metavar="MBIT", help="as in up")
    matrix.add_argument(
        "--prefix", default=matrix_module.PREFIX, help="namespace prefix of its labs (plm-)"
    )
    matrix.set_defaults(handler=_matrix)


def topology_from_arguments(args: argparse.Namespace) -> Topology:
    """The topology `lab up` was asked for, NATs and shaping applied."""
    chosen = {
        key: value
        for key, value in (("nat-a", args.nat_a), ("nat-b", args.nat_b), ("cgn", args.cgn))
        if value is not None
    }
    name: str = args.topology
    if name.endswith(".toml") or os.sep in name:
        if chosen:
            options = ", ".join(f"--{key}" for key in chosen)
            raise UsageError(f"{options}: a topology file sets its NATs' profiles itself")
        topology = load_file(Path(name))
    else:
        topology = builtin.builtin(name, chosen)
    if args.delay is not None or args.loss is not None or args.rate is not None:
        shape = LinkShape(args.delay or 0.0, args.loss or 0.0, args.rate or 0.0)
        topology = topology.with_access_links(shape)
    return topology


def _up(args: argparse.Namespace) -> int:
    prefix = state.check_prefix(args.prefix)
    topology = topology_from_arguments(args)
    lab = Lab.up(topology, prefix=prefix)
    print(f"lab {topology.name} is up (namespaces {prefix}*):")
    print("\n".join(describe.table(describe.host_rows(lab.topology))))
    first = "peer-a" if "peer-a" in lab.hosts else lab.hosts[-1]
    option = "" if prefix == DEFAULT_PREFIX else f" --prefix {prefix}"
    print(f"next: peerline lab exec{option} {first} -- ip -4 addr")
    print(f"      peerline lab down{option}")
    return 0


def _status(args: argparse.Namespace) -> int:
    prefix = state.check_prefix(args.prefix)
    saved = state.load(prefix)
    if saved is None:
        if args.json:
            print(json.dumps({"up": False, "prefix": prefix}))
        else:
            print(f"no lab is up (prefix {prefix})")
        return 1
    present = set(netns.list_namespaces(prefix)) if shutil.which("ip") else set()
    hosts = describe.as_json(saved.topology, prefix)
    missing = [host["name"] for host in hosts if host["namespace"] not in present]
    if args.json:
        document = {
            "up": True,
            "prefix": prefix,
            "created": saved.created,
            "missing": missing,
            "hosts": hosts,
            "topology": to_dict(saved.topology),
        }
        print(json.dumps(document, indent=2))
        return 0
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.created))
    print(f"lab {saved.topology.name} (namespaces {prefix}*), up since {since}:")
    print("\n".join(describe.table(describe.host_rows(saved.topology))))
    if missing:
        print(f"warning: gone from the kernel: {', '.join(missing)}; `peerline lab down` cleans up")
    return 0


def _exec(args: argparse.Namespace) -> int:
    command: list[str] = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("what should run? peerline lab exec HOST -- COMMAND...")
    lab = Lab.attach(state.check_prefix(args.prefix))
    argv = lab.command(args.host, command)
    tools.require_net_admin()
    os.execvp(argv[0], argv)  # becomes the command: its exit code, output and signals


def _down(args: argparse.Namespace) -> int:
    prefix = state.check_prefix(args.prefix)
    removed = teardown(prefix)
    if removed:
        print(f"removed {len(removed)} namespaces: {' '.join(removed)}")
    else:
        print(f"no lab was up (prefix {prefix}); nothing to remove")
    return 0


def _matrix(args: argparse.Namespace) -> int:
    state.check_prefix(args.prefix)
    check_can_build()
    if not 0 < args.size <= 1000:
        raise UsageError("--size must be more than 0 and at most 1000 MB")
    cases = matrix_module.select_cases(args.only)
    shape = None
    if args.delay is not None or args.loss is not None or args.rate is not None:
        shape = LinkShape(args.delay or 0.0, args.loss or 0.0, args.rate or 0.0)
    if not args.json:
        print(matrix_module.HEADER, flush=True)

    def show(result: matrix_module.Result) -> None:
        if not args.json:
            print(matrix_module.format_row(result), flush=True)

    results = matrix_module.run_matrix(
        cases, size=int(args.size * 1_000_000), shape=shape, prefix=args.prefix, progress=show
    )
    if args.json:
        print(json.dumps([result.as_json() for result in results], indent=2))
    else:
        good = sum(result.as_expected for result in results)
        direct = sum(result.path == "direct" for result in results)
        print(
            f"\n{good} of {len(results)} as expected; {direct} direct, "
            f"{sum(r.path == 'relay' for r in results)} relayed, "
            f"{sum(not r.connected for r in results)} not connected"
        )
    return 0 if all(result.connected and result.verified for result in results) else 1


def _profiles(_args: argparse.Namespace) -> int:
    width = max(len(profile.value) for profile in Profile)
    for profile in Profile:
        print(f"  {profile.value:<{width}}  {profile.summary}")
    print("modifiers: PROFILE,hairpin  PROFILE,udp-timeout=SECONDS  (e.g. full-cone,hairpin)")
    return 0
