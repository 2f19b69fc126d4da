"""`peerline offer`, `peerline answer`, `peerline connect`: two peers, one paste each way.

Everything for people goes to standard error; standard input and output are
the data, so `peerline offer < file` on one side and `peerline answer > file`
on the other moves a file, and without redirection it is a chat.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peerline import aio
from peerline.errors import PeerlineError, UsageError
from peerline.ice.birthday import BirthdayConfig
from peerline.ice.description import parse_description
from peerline.ice.gather import CandidatePolicy, IceTransportConfig, parse_stun_uri, parse_turn_uri
from peerline.peer import signal
from peerline.peer.description import Kind, PeerDescription
from peerline.peer.link import LinkConfig, establish
from peerline.peer.pipe import Report, describe_link, pipe
from peerline.peer.terminal import ThreadedReader, ThreadedWriter
from peerline.session.identity import Identity

PASTE_ALLOWANCE = 300.0
"""Seconds the answerer gives a person to paste its answer into the offerer."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    servers = common.add_argument_group("servers and path")
    servers.add_argument(
        "--stun",
        action="append",
        default=[],
        metavar="URI",
        help="STUN server, stun:HOST[:PORT] or HOST[:PORT] (repeatable; default $PEERLINE_STUN)",
    )
    servers.add_argument(
        "--turn",
        action="append",
        default=[],
        metavar="URI",
        help="TURN server, turn:[USER:PASS@]HOST[:PORT][?transport=tcp] or turns:... "
        "(repeatable; default $PEERLINE_TURN)",
    )
    servers.add_argument("--turn-user", metavar="NAME", help="TURN username for every --turn")
    servers.add_argument("--turn-password", metavar="PASS", help="TURN password for every --turn")
    servers.add_argument(
        "--relay-only", action="store_true", help="only relayed candidates: hide your addresses"
    )
    servers.add_argument(
        "--loopback", action="store_true", help="also use loopback (both peers on this machine)"
    )
    servers.add_argument("--no-ipv6", action="store_true", help="gather IPv4 addresses only")
    servers.add_argument(
        "--no-birthday",
        action="store_true",
        help="never try the birthday technique (many ports through a symmetric NAT)",
    )
    servers.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="IP",
        help="use exactly this local address for host candidates (repeatable)",
    )
    servers.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds from both descriptions to a session (default 30)",
    )
    servers.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds to wait for the other side's offer or answer (default 600)",
    )
    run = common.add_argument_group("output")
    run.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report at the end")
    run.add_argument(
        "--identity",
        type=Path,
        metavar="DIR",
        help="keep this node's key and certificate in DIR (default: new ones each run)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    run.add_argument("-v", "--verbose", action="store_true", help="log what ICE and QUIC do")

    offer = subparsers.add_parser(
        "offer",
        parents=[common],
        help="start a direct connection: print an offer, paste the answer",
        description=(
            "Gather candidates, print an offer to paste into `peerline answer` on the "
            "other machine, read the answer it prints, connect (directly where the NATs "
            "allow it, through --turn otherwise), then carry standard input to the peer "
            "and the peer's data to standard output, with a SHA-256 check."
        ),
        epilog=(
            "examples:\n"
            "  peerline offer --stun stun.example.org --turn turn:alice:secret@turn.example.org\n"
            "  peerline offer --stun 203.0.113.1 < photo.jpg\n"
            "  peerline offer --offer-to offer.txt --answer-from answer.txt < data.bin"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    offer.add_argument("--offer-to", type=Path, metavar="FILE", help="write the offer to FILE")
    offer.add_argument(
        "--answer-from", type=Path, metavar="FILE", help="wait for the answer in FILE"
    )
    offer.set_defaults(handler=_run_offer)

    answer = subparsers.add_parser(
        "answer",
        parents=[common],
        help="answer an offer: paste it, print the answer",
        description=(
            "Take the offer printed by `peerline offer` (as an argument, from --offer-from, "
            "or pasted), print the answer to paste back, connect, and carry standard input "
            "and output as `offer` does."
        ),
        epilog=(
            "examples:\n"
            "  peerline answer --stun stun.example.org PL1eNq...\n"
            "  peerline answer --stun 203.0.113.1 > photo.jpg\n"
            "  peerline answer --offer-from offer.txt --answer-to answer.txt > data.bin"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    answer.add_argument("offer", nargs="?", metavar="OFFER", help="the offer (PL1...)")
    answer.add_argument(
        "--offer-from", type=Path, metavar="FILE", help="wait for the offer in FILE"
    )
    answer.add_argument("--answer-to", type=Path, metavar="FILE", help="write the answer to FILE")
    answer.set_defaults(handler=_run_answer)

    connect = subparsers.add_parser(
        "connect",
        parents=[common],
        help="both sides run this with one shared directory; the first one offers",
        description=(
            "Meet the peer through a directory both sides can read and write (a shared "
            "mount, or one machine): the first to arrive writes DIR/offer, the other "
            "answers in DIR/answer; then as `offer` and `answer`."
        ),
        epilog="example (on both sides):\n  peerline connect /mnt/shared/call --stun 203.0.113.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connect.add_argument("directory", type=Path, metavar="DIR", help="the shared directory")
    connect.set_defaults(handler=_run_connect)


# -- configuration ------------------------------------------------------------------------


def _servers(values: list[str], variable: str) -> list[str]:
    if values:
        return values
    return [part for part in os.environ.get(variable, "").split(",") if part.strip()]


def link_config(args: argparse.Namespace, *, wait_for_peer: float = 0.0) -> LinkConfig:
    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0")
    if args.wait <= 0:
        raise UsageError("--wait must be > 0")
    stun = tuple(parse_stun_uri(uri) for uri in _servers(args.stun, "PEERLINE_STUN"))
    turn = tuple(
        parse_turn_uri(uri, args.turn_user, args.turn_password)
        for uri in _servers(args.turn, "PEERLINE_TURN")
    )
    ice = IceTransportConfig(
        stun_servers=stun,
        turn_servers=turn,
        include_loopback=args.loopback,
        addresses=tuple(args.address),
        ipv6=not args.no_ipv6,
        policy=CandidatePolicy.RELAY if args.relay_only else CandidatePolicy.ALL,
        birthday=BirthdayConfig(enabled=not args.no_birthday),
    )
    return LinkConfig(
        ice=ice,
        connect_timeout=args.timeout,
        wait_for_peer=wait_for_peer,
        signal_timeout=args.wait,
    )


def _identity(args: argparse.Namespace) -> Identity:
    if args.identity is None:
        return Identity.ephemeral()
    return Identity.load_or_create(args.identity)


class _Console:
    """Progress lines on standard error, unless --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"peerline: {text}", file=sys.stderr, flush=True)


# -- the three commands -----------------------------------------------------------------


def _run_offer(args: argparse.Namespace) -> int:
    plan = _SignalPlan(
        send_to=args.offer_to,
        receive_from=args.answer_from,
        hint="paste it into `peerline answer`",
    )
    return aio.run(_main(args, Kind.OFFER, link_config(args), plan))


def _run_answer(args: argparse.Namespace) -> int:
    given = None
    if args.offer is not None:  # a mistyped offer is refused before anything starts
        given = PeerDescription.from_blob(args.offer, expect=Kind.OFFER)
        parse_description(given.ice)
    plan = _SignalPlan(
        send_to=args.answer_to,
        receive_from=args.offer_from,
        hint="paste it back into `peerline offer`",
        given=given,
    )
    pasted_answer = args.answer_to is None
    config = link_config(args, wait_for_peer=PASTE_ALLOWANCE if pasted_answer else 0.0)
    return aio.run(_main(args, Kind.ANSWER, config, plan))


def _run_connect(args: argparse.Namespace) -> int:
    config = link_config(args)
    directory: Path = args.directory
    offering = signal.claim_offer(directory, stale_after=config.signal_timeout)
    kind = Kind.OFFER if offering else Kind.ANSWER
    plan = _SignalPlan(
        send_to=directory / ("offer" if offering else "answer"),
        receive_from=directory / ("answer" if offering else "offer"),
        hint="",
    )
    try:
        return aio.run(_main(args, kind, config, plan))
    finally:
        if offering:
            signal.release_offer(directory)


@dataclass(frozen=True, slots=True, kw_only=True)
class _SignalPlan:
    """How our description leaves (a file, else printed with `hint`) and how the
    peer's arrives (`given` on the command line, a file, else pasted)."""

    send_to: Path | None
    receive_from: Path | None
    hint: str
    given: PeerDescription | None = None

    @property
    def needs_terminal(self) -> bool:
        return self.given is None and self.receive_from is None

    def signals(
        self, terminal: ThreadedReader | None, console: _Console
    ) -> tuple[signal.Send, signal.Receive]:
        async def send(description: PeerDescription) -> None:
            if self.send_to is not None:
                signal.write_file(self.send_to, description)
                console.say(f"{description.kind.value} written to {self.send_to}")
            else:
                signal.print_blob(sys.stderr, description, self.hint)

        async def receive(expect: Kind) -> PeerDescription:
            if self.given is not None:
                return self.given
            if self.receive_from is not None:
                return await signal.wait_for_file(self.receive_from, expect)
            if terminal is None:
                raise UsageError("no terminal to paste into: give the other side's text as a file")
            return await signal.paste(terminal, expect, sys.stderr)

        return send, receive


async def _main(
    args: argparse.Namespace,
    kind: Kind,
    config: LinkConfig,
    plan: _SignalPlan,
) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    console = _Console(args.quiet)
    stdin = ThreadedReader(sys.stdin.fileno())
    terminal: ThreadedReader | None = None
    if plan.needs_terminal:
        terminal = stdin if os.isatty(sys.stdin.fileno()) else _open_terminal()
    send, receive = plan.signals(terminal, console)
    report = Report(role=kind.value)
    try:
        identity = _identity(args)
        console.say("gathering candidates")
        link = await establish(config, kind, send, receive, identity)
        try:
            describe_link(link, report)
            console.say(f"connected in {link.timings.setup:.2f} s: {link.path}")
            for failure in link.ice.server_failures:
                console.say(f"(server gave nothing: {failure})")
            await pipe(link, stdin, ThreadedWriter(sys.stdout.fileno()), report)
            if report.rtt_ms is not None:
                console.say(f"round trip {report.rtt_ms:g} ms")
            _say_totals(console, report)
        finally:
            await link.close()
    except PeerlineError as error:
        report.error = str(error)
        raise
    finally:
        if args.report is not None:
            _write_report(args.report, report)
    return 1 if False in (report.verified, report.peer_verified) else 0


def _say_totals(console: _Console, report: Report) -> None:
    verdict = {True: "intact", False: "DAMAGED", None: "not confirmed"}
    if report.sent_bytes:
        rate = f", {report.send_mbps:.1f} Mbit/s" if report.send_mbps else ""
        console.say(
            f"sent {report.sent_bytes} bytes in {report.send_seconds or 0:.2f} s{rate}, "
            f"sha256 {report.sent_sha256}: the peer says {verdict[report.peer_verified]}"
        )
    if report.received_bytes:
        rate = f", {report.receive_mbps:.1f} Mbit/s" if report.receive_mbps else ""
        console.say(
            f"received {report.received_bytes} bytes in {report.receive_seconds or 0:.2f} s"
            f"{rate}, sha256 {report.received_sha256}: {verdict[report.verified]}"
        )


def _open_terminal() -> ThreadedReader | None:
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return None
    return ThreadedReader(fd, name="tty")


def _write_report(path: Path, report: Report) -> None:
    try:
        path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    except OSError as error:
        print(f"peerline: cannot write the report to {path}: {error.strerror}", file=sys.stderr)
