"""baresip (Debian `baresip`) as a scripted SIP phone for tests.

No sound card: `ausine` is the source and `aubridge` the player. The phone is
driven over `ctrl_tcp` (netstring-framed JSON); accounts are added with
`uanew` after the control client is connected, so no event is missed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support.procs import require_program

CLONE_NEWNET = 0x40000000

CONFIG = """\
poll_method epoll
sip_listen {listen}
sip_trans_def {transport}
audio_player aubridge,nil
audio_source ausine,440
audio_alert aubridge,nil
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
auplay_channels 2
audio_buffer 20-160
rtp_tos 0
rtp_stats yes
jitter_buffer_delay 1-10
module_path /usr/lib/baresip/modules
module uuid.so
module g711.so
module ausine.so
module aubridge.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{control}
"""


class Phone:
    """One running baresip and its control connection."""

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.process = process
        self._control = control
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self._token = 0

    def _send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self._control.sendall(str(len(data)).encode() + b":" + data + b",")

    def _read_one(self, timeout: float) -> dict[str, Any] | None:
        self._control.settimeout(timeout)
        while True:
            colon = self._buffer.find(b":")
            if colon > 0:
                size = int(self._buffer[:colon])
                end = colon + 1 + size
                if len(self._buffer) > end:
                    body = self._buffer[colon + 1 : end]
                    self._buffer = self._buffer[end + 1 :]
                    return dict(json.loads(body))
            try:
                chunk = self._control.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self._buffer += chunk

    def command(self, command: str, params: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Run a command; events that arrive meanwhile are kept in `events`."""
        self._token += 1
        token = str(self._token)
        self._send({"command": command, "params": params, "token": token})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._read_one(max(0.05, deadline - time.monotonic()))
            if message is None:
                continue
            if message.get("event"):
                self.events.append(message)
            elif message.get("token") == token:
                return message
        raise AssertionError(f"baresip did not answer {command!r}")

    def wait_event(
        self,
        kinds: str | Sequence[str],
        timeout: float = 15.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("type") in wanted and (where is None or where(event)):
                    self.events.remove(event)
                    return event
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds_seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {sorted(wanted)} within {timeout} s; saw {kinds_seen}")
            message = self._read_one(min(remaining, 0.5))
            if message is not None and message.get("event"):
                self.events.append(message)


def connect(address: tuple[str, int], namespace: str | None) -> socket.socket:
    """A TCP connection made from inside network namespace `namespace` (a lab host's
    loopback is its own), or from here."""
    if namespace is None:
        return socket.create_connection(address, timeout=1)
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/ns/net") as own, open(f"/run/netns/{namespace}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return socket.create_connection(address, timeout=1)
        finally:
            libc.setns(own.fileno(), CLONE_NEWNET)


def rtp_counts(audio_debug: str) -> tuple[int, int]:
    """(packets sent, packets received) from the `audio_debug` report."""
    sent = re.search(r"TX: packets=(\d+)", audio_debug)
    received = re.search(r"rcvd=(\d+)", audio_debug)
    return int(sent.group(1)) if sent else 0, int(received.group(1)) if received else 0


def account(user: str, password: str, proxy: str, transport: str, extra: str = "") -> str:
    """A `uanew` account line: registers through `proxy` (ip:port), answers calls itself."""
    return (
        f"<sip:{user}@example.test;transport={transport}>;auth_pass={password};"
        f'outbound="sip:{proxy};transport={transport}";regint=600;answermode=auto{extra}'
    )


def write_config(directory: Path, listen: str, control: int, transport: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text(
        CONFIG.format(listen=listen, control=control, transport=transport)
    )
    (directory / "accounts").write_text("")
    (directory / "contacts").write_text("")
    return directory


@contextlib.contextmanager
def phone(
    directory: Path,
    *,
    listen: str,
    control: int,
    transport: str = "udp",
    prefix: Sequence[str] = (),
    control_host: str = "127.0.0.1",
    interface: str | None = None,
    namespace: str | None = None,
) -> Iterator[Phone]:
    """A baresip phone, stopped on the way out (`quit`, then TERM, then KILL)."""
    require_program("baresip", "baresip")
    write_config(directory, listen, control, transport)
    log = open(directory / "baresip.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [*prefix, "baresip", "-f", str(directory), *(["-n", interface] if interface else [])],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    control_socket: socket.socket | None = None
    try:
        deadline = time.monotonic() + 10
        while control_socket is None:
            try:
                control_socket = connect((control_host, control), namespace)
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "baresip did not start: " + (directory / "baresip.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        running = Phone(process, control_socket)
        yield running
        with contextlib.suppress(AssertionError, OSError):
            running._send({"command": "quit", "params": "", "token": "quit"})
    finally:
        if control_socket is not None:
            control_socket.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
