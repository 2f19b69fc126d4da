"""coturn's turnutils_uclient against `peerline serve`: every client transport, channels
and Send indications, client to client and through turnutils_peer, long-term and REST
credentials, and RFC 6062 TCP relays (`-T`). Every message must come back (0 % loss at
a moderate rate)."""

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.turn_support import PASSWORD, SECRET, USER, TurnServer, turn_server
from tests.support.procs import free_port, require_program, running

pytestmark = pytest.mark.interop

#: name -> uclient flags. "-t": TCP, "-S" with "-t": TLS, "-s": Send indications instead
#: of channels, "-y": client to client instead of turnutils_peer, "-W": REST credentials,
#: "-T": TCP relays (implies "-t -y"; with "-S" over TLS).
CASES = {
    "udp-channels": [],
    "udp-send": ["-s"],
    "tcp-channels": ["-t"],
    "tcp-send": ["-t", "-s"],
    "tls-channels": ["-t", "-S"],
    "tls-send": ["-t", "-S", "-s"],
    "udp-client-to-client": ["-y"],
    "tcp-client-to-client": ["-y", "-t"],
    "tls-client-to-client-send": ["-y", "-t", "-S", "-s"],
    "udp-rest": ["-W", SECRET],
    "tcp-rest-send": ["-t", "-s", "-W", SECRET],
    # RFC 6062 TCP relays, client to client: one side sends Connect to the other's relayed
    # address, the other gets a ConnectionAttempt; both bind a data connection.
    "tcp-relay": ["-T"],
    "tcp-relay-tls": ["-T", "-S"],
    "tcp-relay-rest": ["-T", "-W", SECRET],
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Run every case at once against one server (uclient spends most of its ~5 s waiting)."""
    require_program("turnutils_uclient", "coturn")
    tmp: Path = tmp_path_factory.mktemp("uclient")
    peer_port = free_port()
    with (
        turn_server(tmp) as server,
        running(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)]),
    ):
        yield run_all(server, peer_port)


def run_all(server: TurnServer, peer_port: int) -> dict[str, str]:
    processes = {}
    for name, flags in CASES.items():
        port = server.tls_port if "-S" in flags else server.port
        argv = ["turnutils_uclient", "-u", USER, "-w", PASSWORD, "-p", str(port)]
        argv += ["-e", "127.0.0.1", "-r", str(peer_port), "-m", "2", "-n", "30", "-l", "120"]
        argv += ["-z", "5", "-X", "-g", *flags, "127.0.0.1"]
        processes[name] = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    outputs = {}
    for name, process in processes.items():
        try:
            outputs[name] = process.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            outputs[name] = process.communicate()[0] + "\n(timed out)"
    return outputs


@pytest.mark.parametrize("case", list(CASES))
def test_every_message_arrives(results: dict[str, str], case: str) -> None:
    output = results[case]
    lost = re.search(r"Total lost packets (\d+)", output)
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
    assert lost is not None, output[-3000:]
    assert int(lost.group(1)) == 0, output[-3000:]
    sent, received = (int(n) for n in totals[-1])
    assert sent > 0, output[-3000:]
    assert received == sent, output[-3000:]
