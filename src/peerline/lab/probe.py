"""A UDP probe that runs inside a lab host: `python -m peerline.lab.probe`.

Plain sockets only (no peerline protocol code), driven by JSON lines on stdin, one
answer line per request on stdout, so a test or the demo can open sockets in several
namespaces and see exactly which packets crossed a NAT and from which address:

    {"op": "open", "ip": "203.0.113.1", "port": 7000}
        -> {"ok": true, "socket": 3, "local": [ip, port]}
    {"op": "send", "socket": 3, "to": [ip, port], "payload": "m1"}  -> {"ok": true}
    {"op": "receive", "socket": 3, "payloads": ["m1"], "timeout": 0.5}
        -> {"ok": true, "received": {"m1": [source ip, source port]}}   (what came in time)
        optional "last": "m1", "settle": 0.2: once m1 came, wait only 0.2 s for the rest
    {"op": "close", "socket": 3}                          -> {"ok": true}

Packets whose payload was not asked for are dropped. It exits at end of input.
"""

import json
import select
import socket
import sys
import time
from typing import Any

#: Longest wait one `receive` may ask for.
_MAX_WAIT_S = 30.0


def _open(request: dict[str, Any], sockets: dict[int, socket.socket]) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((str(request.get("ip", "0.0.0.0")), int(request.get("port", 0))))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    sockets[sock.fileno()] = sock
    return {"ok": True, "socket": sock.fileno(), "local": list(sock.getsockname())}


def _receive(
    sock: socket.socket, wanted: set[str], timeout: float, last: str | None, settle: float
) -> dict[str, Any]:
    """Collect `wanted` payloads until all came or `timeout`; once `last` (sent after
    the others) has come, the others get only `settle` seconds more."""
    deadline = time.monotonic() + min(timeout, _MAX_WAIT_S)
    received: dict[str, list[Any]] = {}
    while wanted - received.keys():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            continue
        try:
            data, source = sock.recvfrom(65535)
        except (BlockingIOError, ConnectionRefusedError):
            continue
        payload = data.decode(errors="replace")
        if payload in wanted and payload not in received:
            received[payload] = list(source)
            if payload == last:
                deadline = min(deadline, time.monotonic() + settle)
    return {"ok": True, "received": received}


def handle(request: dict[str, Any], sockets: dict[int, socket.socket]) -> dict[str, Any]:
    """Carry out one request; errors propagate to `main`, which reports them."""
    operation = request["op"]
    if operation == "open":
        return _open(request, sockets)
    sock = sockets[int(request["socket"])]
    if operation == "send":
        host, port = request["to"]
        sock.sendto(str(request["payload"]).encode(), (str(host), int(port)))
        return {"ok": True}
    if operation == "receive":
        wanted = {str(payload) for payload in request["payloads"]}
        last = request.get("last")
        return _receive(
            sock,
            wanted,
            float(request.get("timeout", 1.0)),
            None if last is None else str(last),
            float(request.get("settle", 0.0)),
        )
    if operation == "close":
        sockets.pop(sock.fileno()).close()
        return {"ok": True}
    raise ValueError(f"unknown op {operation!r}")


def main() -> int:
    sockets: dict[int, socket.socket] = {}
    for line in sys.stdin:
        try:
            answer = handle(json.loads(line), sockets)
        except (OSError, ValueError, KeyError, TypeError) as error:
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
