"""`peerline lab`: build, inspect, use and remove the NAT lab."""

import argparse
from typing import Any


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    parser = subparsers.add_parser("lab", help="the NAT lab (network namespaces + kernel NATs)")
    parser.set_defaults(handler=lambda _args: parser.print_help() or 0)
