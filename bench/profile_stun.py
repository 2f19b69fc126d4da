"""Where a STUN Binding request's time goes in peerline serve, split by stage.

    .venv/bin/python bench/profile_stun.py [--requests 200000] [--cprofile]

Times the sans-IO service directly (no sockets) and each stage it is made of, so
the gap to the end-to-end benchmark (bench_stun.py) is the event loop and the
kernel. `--cprofile` prints the top functions of the service call.
"""

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable

from peerline.stun import MessageBuilder, MessageClass, Method, binding_success, parse
from peerline.supernode.config import build_config
from peerline.supernode.stun_service import StunService
from peerline.supernode.transports import Transport

CLIENT = ("198.51.100.7", 40000)
LOCAL = ("127.0.0.1", 3478)


def per_call_us(function: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    request = MessageBuilder(Method.BINDING, MessageClass.REQUEST).encode()
    # A limit high enough never to refuse: this measures what checking it costs.
    limited = StunService(
        build_config({}, {"listen": ["127.0.0.1"], "rate": 1e9, "burst": 1e9}), None, 0.0
    )
    unlimited = StunService(build_config({}, {"listen": ["127.0.0.1"], "rate": 0}), None, 0.0)
    message = parse(request)
    n = args.requests
    stages = {
        "parse": per_call_us(lambda: parse(request), n),
        "build response": per_call_us(lambda: binding_success(message.transaction_id, CLIENT), n),
        "service, no rate limit": per_call_us(
            lambda: unlimited.handle(request, CLIENT, LOCAL, Transport.UDP, 1.0), n
        ),
        "service, rate limit on": per_call_us(
            lambda: limited.handle(request, CLIENT, LOCAL, Transport.UDP, 1.0), n
        ),
    }
    for stage, micros in stages.items():
        print(f"{stage:24} {micros:6.2f} µs")
    if args.cprofile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            unlimited.handle(request, CLIENT, LOCAL, Transport.UDP, 1.0)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
