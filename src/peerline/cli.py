"""The `peerline` command: parses arguments and hands each subcommand to its module.

Each subcommand lives in the package it belongs to and exposes
`register(subparsers)`, which adds its parser and sets `handler` to a function
taking the parsed arguments and returning the exit code.
"""

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from peerline import __version__
from peerline.errors import PeerlineError

#: Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "peerline.demo",
    "peerline.lab.cli",
    "peerline.supernode.cli",
    "peerline.nat.cli",
    "peerline.peer.cli",
)

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit code 2) instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="peerline",
        description=(
            "Connect peers directly through NATs and firewalls: classify NATs, punch "
            "holes (ICE), relay when needed (TURN), signal with SIP, and test it all "
            "in a NAT lab of real kernel NATs."
        ),
    )
    parser.add_argument("--version", action="version", version=f"peerline {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
    except PeerlineError as error:
        print(f"peerline: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("peerline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`peerline ... | head`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code
