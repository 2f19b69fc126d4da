"""SIP over WebSocket (RFC 7118) with a real client: JsSIP, the SIP library WebRTC
phones are built on, run by Node.js (tests/interop/jssip/phone.js) instead of a
browser. Two JsSIP phones register to `peerline serve --sip-ws-port` (and, in a
second round, `--sip-wss-port`: ws over TLS) with digest passwords and SIP Outbound
(JsSIP always asks for it), exchange MESSAGEs over their WebSocket flows, and when
one phone's socket closes its binding goes with it.

sipp and baresip 1.0 do not speak WebSocket; the WS framing on our side is wsproto,
and JsSIP's client side is its own code over the `ws` package, so both ends of the
wire are independent implementations.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.sip_support import DOMAIN, serve_metric, sip_serve
from tests.support.procs import stop_process, wait_until

pytestmark = pytest.mark.interop

JSSIP = Path(__file__).parent / "jssip"
USERS = {"alice": "wonderland", "bob": "builder"}


class JsSipPhone:
    """One JsSIP user agent: JSON commands in, JSON events out."""

    def __init__(self, url: str, user: str, password: str) -> None:
        env = dict(os.environ)
        if url.startswith("wss:"):
            # The server's certificate is the self-signed one it made itself.
            env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
        self.process = subprocess.Popen(
            ["node", str(JSSIP / "phone.js"), url, user, password, DOMAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=JSSIP,
            env=env,
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("{"):
                self._events.put(json.loads(line))

    def command(self, **command: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def wait_event(self, *kinds: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {kinds} within {timeout} s; output: {''.join(self.output)[-2000:]}"
                ) from None
            if event["event"] in kinds:
                return event

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.command(quit=True)
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.process)  # type: ignore[arg-type]
        self._reader.join(timeout=5)  # it ends at the end of the output
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class Server:
    def __init__(self, url: str, metrics_port: int) -> None:
        self.url = url
        self.metrics_port = metrics_port

    def bindings(self) -> float:
        """The registered contacts, from the server's own metrics endpoint."""
        return serve_metric(self.metrics_port, "peerline_sip_bindings")


@pytest.fixture(scope="module", params=["ws", "wss"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    if shutil.which("node") is None:
        pytest.skip("needs Node.js (node) for the JsSIP phone")
    if not (JSSIP / "node_modules" / "jssip").is_dir():
        pytest.skip(
            "needs JsSIP: npm ci in tests/interop/jssip (scripts/bootstrap.sh test does it)"
        )
    scheme = request.param
    tmp = tmp_path_factory.mktemp(f"sip-{scheme}")
    secure = scheme == "wss"
    with sip_serve(tmp, USERS, ws=not secure, wss=secure, metrics=True) as serve:
        port = serve.wss if secure else serve.ws
        yield Server(f"{scheme}://127.0.0.1:{port}", serve.metrics)


@pytest.fixture
def phones(server: Server) -> Iterator[dict[str, JsSipPhone]]:
    started = {name: JsSipPhone(server.url, name, pw) for name, pw in USERS.items()}
    try:
        yield started
    finally:
        for phone in started.values():
            phone.stop()


def test_phones_register_over_websocket_with_outbound(phones: dict[str, JsSipPhone]) -> None:
    for phone in phones.values():
        registered = phone.wait_event("registered", "registration_failed")
        assert registered["event"] == "registered", registered
        assert registered["status"] == 200
        assert "outbound" in registered["require"]  # RFC 5626: the flow is the route
        assert registered["flow_timer"] == "120"


def test_messages_cross_both_ways_over_the_websocket_flows(
    phones: dict[str, JsSipPhone],
) -> None:
    alice, bob = phones["alice"], phones["bob"]
    for phone in (alice, bob):
        assert phone.wait_event("registered", "registration_failed")["event"] == "registered"
    alice.command(message={"to": "bob", "body": "hello bob, over a websocket"})
    assert alice.wait_event("sent", "send_failed") == {"event": "sent", "status": 200}
    assert bob.wait_event("message") == {
        "event": "message",
        "from": "alice",
        "body": "hello bob, over a websocket",
    }
    bob.command(message={"to": "alice", "body": "hi alice \u263a"})
    assert bob.wait_event("sent", "send_failed")["status"] == 200
    assert alice.wait_event("message")["body"] == "hi alice \u263a"


def test_a_closed_websocket_takes_its_binding_with_it(
    server: Server, phones: dict[str, JsSipPhone]
) -> None:
    alice, bob = phones["alice"], phones["bob"]
    for phone in (alice, bob):
        assert phone.wait_event("registered", "registration_failed")["event"] == "registered"
    wait_until(lambda: server.bindings() == 2, 10, "the two bindings (and only those)")
    bob.process.kill()  # no un-REGISTER: only the socket closing tells the server
    bob.process.wait(timeout=5)
    wait_until(lambda: server.bindings() == 1, 10, "bob's binding to go with his socket")
    alice.command(message={"to": "bob", "body": "are you there?"})
    failed = alice.wait_event("sent", "send_failed")
    assert failed["event"] == "send_failed"
    assert failed["status"] == 480


def test_a_wrong_password_is_refused(server: Server) -> None:
    phone = JsSipPhone(server.url, "alice", "not-it")
    try:
        failed = phone.wait_event("registered", "registration_failed")
        assert failed["event"] == "registration_failed"
        assert failed["status"] in (401, 403)
    finally:
        phone.stop()
