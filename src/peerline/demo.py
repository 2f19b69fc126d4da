"""`peerline demo`: the showcase, narrated step by step in the NAT lab."""

import argparse
from typing import Any


def run(_args: argparse.Namespace) -> int:
    print("peerline demo: the NAT lab is not built yet")
    return 0


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser("demo", help="build the NAT lab and narrate what happens")
    parser.set_defaults(handler=run)
