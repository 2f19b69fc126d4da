"""Link impairments: rate as `tc -batch` lines (tbf), delay as a userspace delay line.

Rate: qdiscs act on egress only, so a rate-limited link has one tbf at each end.

Delay: not netem, which some kernels lack (this lab's own CI machine among them), but
`peerline.lab.delayline`, one process in the namespace of the host that owns the
access link, fed by an NFQUEUE. Using it on every kernel keeps one behaviour, tested
wherever the tests run, and keeps the plan pure (no probing of the kernel). Both
directions are delayed at the host's end of the link:

- entering: raw PREROUTING on the uplink;
- leaving, sent by the host itself: raw OUTPUT on the uplink;
- leaving, forwarded by a NAT from its LAN: raw PREROUTING on the LAN side, for
  packets to neither the LAN nor the NAT itself (hairpinned packets never cross the
  access link, so they are not delayed).

The raw table runs before conntrack, so a packet is held before the kernel has
tracked it. Queuing in mangle POSTROUTING instead holds the packets of a new flow
between conntrack and source NAT, so each packet of a burst gets a conntrack entry of
its own: behind `symmetric`, 200 datagrams from one socket left from 199 public ports
(tried on 6.18), which is not what the NAT does without a delay. The iptables
(iptables-nft) NFQUEUE target is used because nft's own `queue` statement is missing
from some kernels.

Loss is not here: it is an nftables rule (see `nftables.loss_ruleset`).
"""

import sys
from ipaddress import IPv4Network

from peerline.lab.profiles import LinkShape

#: How long a packet may wait in the rate limiter's queue before it is dropped.
_TBF_LATENCY = "100ms"
#: The NFQUEUE of the delay line in every host namespace with a delayed link; queue
#: numbers are per namespace, this one is unlikely to meet a user's own NFQUEUE program.
DELAY_QUEUE = 25000
_QUEUE = f"-j NFQUEUE --queue-num {DELAY_QUEUE}"


def qdisc_lines(device: str, shape: LinkShape) -> list[str]:
    """`tc -batch` lines that rate-limit what leaves `device`; none if not rate-limited."""
    if not shape.rate_mbit:
        return []
    # tbf needs a bucket of at least one packet and of what one timer tick lets out.
    burst = max(3000, int(shape.rate_mbit * 1_000_000 / 8 / 250))
    return [
        f"qdisc add dev {device} root tbf rate {shape.rate_mbit:g}mbit burst {burst} "
        f"latency {_TBF_LATENCY}"
    ]


def delay_rules(uplink: str, lan: tuple[str, IPv4Network] | None = None) -> str:
    """`iptables-restore` input queuing to the delay line every packet that crosses
    `uplink`; for a NAT, `lan` (its LAN device and subnet) catches what it forwards."""
    rules = [
        f"-A PREROUTING -i {uplink} {_QUEUE}",
        f"-A OUTPUT -o {uplink} {_QUEUE}",
    ]
    if lan is not None:
        device, subnet = lan
        rules.append(
            f"-A PREROUTING -i {device} ! -d {subnet} "
            f"-m addrtype ! --dst-type LOCAL,BROADCAST,MULTICAST {_QUEUE}"
        )
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", *rules, "COMMIT"]
    return "".join(f"{line}\n" for line in lines)


def delay_line_argv(delay_ms: float) -> list[str]:
    """The delay line's command, to run inside the host's namespace."""
    return [
        sys.executable,
        "-m",
        "peerline.lab.delayline",
        "--queue",
        str(DELAY_QUEUE),
        "--delay-ms",
        f"{delay_ms:g}",
    ]
