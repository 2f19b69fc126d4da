"""`peerline serve` as registrar and proxy for sipp (Debian sip-tester): REGISTER with
digest auth, a call INVITE/ACK/BYE from a sipp UAC to a sipp UAS, MESSAGE, CANCEL,
and garbage that must not stop the server."""

import hashlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.sip_support import DOMAIN, sip_serve
from tests.support.procs import free_port, require_program

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "sipp"
USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}
#: Users only the REGISTER load test uses, so its bindings do not fork the calls.
LOAD_USERS = {f"load{i}": f"pw{i}" for i in range(10)}
#: The UAC speaks from another loopback address, so its From is outside the domain.
UAC_IP = "127.0.0.2"
HA1_PASSWORD = "dave-secret"


class Server:
    def __init__(self, port: int, tmp: Path, log: Path) -> None:
        self.port = port
        self.tmp = tmp
        self.log = log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_program("sipp", "sip-tester")
    tmp = tmp_path_factory.mktemp("sip")
    # dave is known by his HA1 only (no password on the server's disk).
    ha1 = hashlib.md5(f"dave:{DOMAIN}:{HA1_PASSWORD}".encode()).hexdigest()
    users_file = tmp / "users.txt"
    users_file.write_text(f"# name:md5:HA1\ndave:md5:{ha1}\n")
    extra = [
        "--sip-digest",
        "MD5",  # sipp answers MD5 only, and gives up at the first challenge
        "--rate",
        "0",
        "--users-file",
        str(users_file),
    ]
    with sip_serve(tmp, USERS | LOAD_USERS, extra=extra) as serve:
        yield Server(serve.sip, tmp, serve.log)


def sipp(
    server: Server, args: list[str], *, timeout: float = 30, ip: str = "127.0.0.1"
) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [
            "sipp",
            f"127.0.0.1:{server.port}",
            "-i",
            ip,
            "-nostdin",
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            str(server.tmp / f"sipp-{time.monotonic_ns()}.err"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=False,
        cwd=server.tmp,
    )


def users_csv(server: Server, entries: dict[str, str]) -> Path:
    path = server.tmp / f"users-{time.monotonic_ns()}.csv"
    lines = ["SEQUENTIAL"] + [
        f"{name};{DOMAIN};[authentication username={name} password={pw}]"
        for name, pw in entries.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def register(server: Server, user: str, port: int, *, password: str | None = None) -> int:
    csv = users_csv(server, {user: password or USERS[user]})
    done = sipp(
        server,
        ["-sf", str(SCENARIOS / "register.xml"), "-inf", str(csv), "-m", "1", "-p", str(port)],
        timeout=10,
    )
    return done.returncode


def test_register_with_digest_auth(server: Server) -> None:
    csv = users_csv(server, LOAD_USERS)
    done = sipp(
        server, ["-sf", str(SCENARIOS / "register.xml"), "-inf", str(csv), "-m", "20", "-r", "50"]
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_a_user_known_only_by_ha1_registers(server: Server) -> None:
    assert register(server, "dave", free_port(), password=HA1_PASSWORD) == 0
    assert register(server, "dave", free_port(), password="not-it") != 0


def test_wrong_password_is_refused(server: Server) -> None:
    assert register(server, "alice", free_port(), password="not-it") != 0


def run_uas(server: Server, scenario: list[str], port: int) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        ["sipp", "-i", "127.0.0.1", "-p", str(port), "-nostdin", *scenario, "-m", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=server.tmp,
    )


def call_through(server: Server, user: str, uas_scenario: list[str], uac_scenario: str) -> None:
    port = free_port()
    assert register(server, user, port) == 0
    callee = run_uas(server, uas_scenario, port)
    try:
        time.sleep(0.3)
        done = sipp(
            server,
            ["-sf", str(SCENARIOS / uac_scenario), "-s", user, "-m", "1", "-p", str(free_port())],
            ip=UAC_IP,
        )
        assert done.returncode == 0, done.stdout[-3000:]
        assert callee.wait(timeout=15) == 0
    finally:
        if callee.poll() is None:
            callee.kill()
            callee.wait()


def test_call_invite_ack_bye_from_uac_to_uas(server: Server) -> None:
    call_through(server, "bob", ["-sf", str(SCENARIOS / "uas_call.xml")], "uac_call.xml")


def test_message_reaches_the_registered_user(server: Server) -> None:
    call_through(server, "alice", ["-sf", str(SCENARIOS / "uas_message.xml")], "uac_message.xml")


def test_cancel_stops_the_ringing_phone(server: Server) -> None:
    call_through(server, "carol", ["-sf", str(SCENARIOS / "uas_cancel.xml")], "uac_cancel.xml")


def test_garbage_does_not_stop_the_server(server: Server) -> None:
    rng = random.Random(3261)
    valid = (
        f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
        f"From: <sip:x@y>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: g\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(3000):
            kind = rng.randrange(3)
            if kind == 0:
                data = rng.randbytes(rng.randrange(1, 400))
            elif kind == 1:
                data = valid[: rng.randrange(len(valid))]
            else:
                mutated = bytearray(valid)
                for _ in range(4):
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
                data = bytes(mutated)
            udp.sendto(data, ("127.0.0.1", server.port))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as tcp:
        tcp.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + rng.randbytes(2000))
    assert register(server, "alice", free_port()) == 0
    assert "Traceback" not in server.log.read_text()
