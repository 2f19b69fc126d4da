"""Link impairments as `tc -batch` lines: netem for delay, tbf for rate.

qdiscs act on egress only, so a link is shaped by one qdisc at each of its two ends.
Loss is not here: it is an nftables rule (see `nftables.loss_ruleset`), which also
works on kernels built without netem.
"""

from peerline.lab.profiles import LinkShape

#: How long a packet may wait in the rate limiter's queue before it is dropped.
_TBF_LATENCY = "100ms"


def qdisc_lines(device: str, shape: LinkShape) -> list[str]:
    """`tc -batch` lines that delay and rate-limit what leaves `device`; none if unshaped."""
    rate: list[str] = []
    if shape.rate_mbit:
        # tbf needs a bucket of at least one packet and of what one timer tick lets out.
        burst = max(3000, int(shape.rate_mbit * 1_000_000 / 8 / 250))
        rate = ["tbf", f"rate {shape.rate_mbit:g}mbit burst {burst} latency {_TBF_LATENCY}"]
    if shape.delay_ms:
        lines = [
            f"qdisc add dev {device} root handle 1: netem delay {shape.delay_ms:g}ms limit 100000"
        ]
        if rate:
            lines.append(f"qdisc add dev {device} parent 1:1 handle 10: {' '.join(rate)}")
        return lines
    if rate:
        return [f"qdisc add dev {device} root {' '.join(rate)}"]
    return []
