"""A TURN peer for lab tests, run inside a lab host and steered over stdin/stdout.

    python -m tests.support.turn_peer SERVER_IP PORT USER PASSWORD [udp|tcp]

It allocates with peerline's TURN client and prints one JSON line per step; the
test answers with one JSON line each:

    -> {"relayed": [ip, port], "mapped": [ip, port]}
    <- {"peer": [ip, port], "channel": false}    permission (and channel when true)
    -> {"ready": true}
    <- {"send": N, "tag": "..."}                  send N datagrams, await N
    -> {"received": [...], "sources": [[ip, port], ...]}
    <- {"quit": true}                             deallocate and exit

Every wait is bounded; an error is printed as {"error": "..."} and exits 1.
"""

import asyncio
import json
import sys
from typing import Any

from peerline.stun import Transport
from peerline.turn.aioclient import AsyncTurnClient
from peerline.turn.client import ClientConfig

STEP_TIMEOUT = 20.0


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def ask(reader: asyncio.StreamReader) -> dict[str, Any]:
    async with asyncio.timeout(STEP_TIMEOUT * 3):
        line = await reader.readline()
    if not line:
        raise EOFError("the test closed stdin")
    answer: dict[str, Any] = json.loads(line)
    return answer


async def session(server: tuple[str, int], user: str, password: str, transport: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    kind = Transport.TCP if transport == "tcp" else Transport.UDP
    config = ClientConfig(server=server, username=user, password=password, transport=kind)
    client = AsyncTurnClient(config)
    try:
        allocated = await client.allocate(timeout=STEP_TIMEOUT)
        say(relayed=list(allocated.relayed), mapped=list(allocated.mapped))
        while True:
            order = await ask(reader)
            if "peer" in order:
                peer = (str(order["peer"][0]), int(order["peer"][1]))
                await client.create_permission(peer[0], timeout=STEP_TIMEOUT)
                if order.get("channel"):
                    await client.bind_channel(peer, timeout=STEP_TIMEOUT)
                say(ready=True)
            elif "send" in order:
                count = int(order["send"])
                for index in range(count):
                    client.send(f"{order['tag']} {index}".encode(), peer)
                received, sources = [], []
                try:
                    async with asyncio.timeout(STEP_TIMEOUT):
                        while len(received) < count:
                            data, source = await client.recv()
                            received.append(data.decode(errors="replace"))
                            sources.append(list(source))
                except TimeoutError:
                    pass  # report what came; the test decides
                say(received=received, sources=sources)
            else:
                return
    finally:
        await client.close()


def main() -> int:
    server_ip, port, user, password, *rest = sys.argv[1:]
    try:
        asyncio.run(session((server_ip, int(port)), user, password, rest[0] if rest else "udp"))
    except Exception as error:  # reported to the test, which fails on it
        say(error=f"{type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
