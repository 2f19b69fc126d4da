"""The birthday technique in the NAT lab: how often it wins and how fast, symmetric x
port-restricted cone, against plain ICE in the same run.

    .venv/bin/python bench/bench_birthday.py [--runs 20] [--baseline-runs 5] [--json]

Builds a lab (prefix plbdb-) with nat-1 `symmetric` (`masquerade random,fully-random`),
nat-2 and nat-3 `port-restricted-cone`, and `peerline serve` on `server` (STUN with
RFC 5780 OTHER-ADDRESS, TURN). Then, interleaved so that background load falls on
all alike:

- `--runs` times sym x prc with the technique (its defaults: 256 ports, 2000 probes
  at 500/s, 5 s budget), the controlling side alternating: the share that ended on
  a direct path, and the time from the descriptions' exchange to the first selected
  pair (the slower side), median and p90 over the direct ones; the technique's own
  clock (start to first hit, to the direct pair) and the probes it needed;
- `--baseline-runs` times the same sym x prc with `--no-birthday`: plain ICE, which
  can only end on the relay;
- `--baseline-runs` times prc x prc: plain ICE punching a hole directly.

Prints the ratios of the technique's median time to each baseline's. Needs root;
traffic stays inside the lab's namespaces.
"""

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.ice_peer, the driver both sides run

from tests.lab.conftest import side_by_side  # noqa: E402
from tests.support.ice_peer import peer_server_args, run_pair, serve_args  # noqa: E402

from peerline.ice.birthday import BirthdayConfig  # noqa: E402
from peerline.lab.lab import Lab, teardown  # noqa: E402
from peerline.lab.programs import start_serve  # noqa: E402

PREFIX = "plbdb-"
SYM, PRC, PRC2 = "peer-1", "peer-2", "peer-3"


@dataclass
class Samples:
    """One variant's runs."""

    name: str
    connect_s: list[float] = field(default_factory=list)
    """Exchange to the first selected pair (the slower side), direct runs only."""
    direct: int = 0
    relayed: int = 0
    failed: list[str] = field(default_factory=list)
    hit_s: list[float] = field(default_factory=list)
    direct_after_s: list[float] = field(default_factory=list)
    probes: list[int] = field(default_factory=list)
    relay_s: list[float] = field(default_factory=list)
    """Exchange to the first selected pair when it was the relay."""

    @property
    def runs(self) -> int:
        return self.direct + self.relayed + len(self.failed)

    def add(self, results: list[dict[str, Any]]) -> None:
        if not all(r.get("connected") and r.get("received") == 10 for r in results):
            self.failed.append(json.dumps(results)[:500])
            return
        slower = max(r["connect_s"] for r in results)
        if results[0]["relayed"]:
            self.relayed += 1
            self.relay_s.append(slower)
        else:
            self.direct += 1
            self.connect_s.append(slower)
        for result in results:
            birthday = result.get("birthday")
            if birthday is None:
                continue
            if birthday["role"] == "prober":
                self.probes.append(birthday["probes_sent"])
            if birthday["hit_after"] is not None and birthday["role"] == "prober":
                self.hit_s.append(birthday["hit_after"])
            if birthday["direct_after"] is not None and birthday["role"] == "prober":
                self.direct_after_s.append(birthday["direct_after"])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runs": self.runs,
            "direct": self.direct,
            "relayed": self.relayed,
            "failed": len(self.failed),
            "direct_rate": self.direct / self.runs if self.runs else None,
            "connect_ms_median": median_ms(self.connect_s),
            "connect_ms_p90": p90_ms(self.connect_s),
            "relay_ms_median": median_ms(self.relay_s),
            "hit_ms_median": median_ms(self.hit_s),
            "direct_after_ms_median": median_ms(self.direct_after_s),
            "direct_after_ms_p90": p90_ms(self.direct_after_s),
            "probes_median": statistics.median(self.probes) if self.probes else None,
        }


def median_ms(values: list[float]) -> float | None:
    return round(1000 * statistics.median(values), 1) if values else None


def p90_ms(values: list[float]) -> float | None:
    """The nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)], 1)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="sym x prc runs with the technique")
    parser.add_argument("--baseline-runs", type=int, default=5, help="runs of each baseline")
    parser.add_argument("--json", action="store_true", help="one JSON object at the end")
    args = parser.parse_args()
    if not 1 <= args.runs <= 200 or not 0 <= args.baseline_runs <= 200:
        parser.error("--runs must be 1-200 and --baseline-runs 0-200")
    config = BirthdayConfig()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  kernel {platform.release()}")
    print(
        f"birthday: {config.ports} ports, {config.probes} probes at {config.rate:g}/s, "
        f"budget {config.budget:g} s; expected success {config.probability:.4f}"
    )
    technique = Samples("sym x prc, birthday")
    no_birthday = Samples("sym x prc, plain ICE")
    cones = Samples("prc x prc, plain ICE")
    teardown(PREFIX)
    topology = side_by_side(
        "bdbench", ["symmetric", "port-restricted-cone", "port-restricted-cone"]
    )
    with Lab.up(topology, prefix=PREFIX) as lab, tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        server = start_serve(lab, "server", serve_args(tmp / "serve", alt_ip=True))
        try:
            if not server.running:
                print(f"peerline serve did not start: {server.startup}", file=sys.stderr)
                return 1
            servers = peer_server_args()
            for index in range(args.runs):
                hosts = (SYM, PRC) if index % 2 == 0 else (PRC, SYM)
                technique.add(run_pair(lab, tmp, *hosts, servers))
                if index < args.baseline_runs:
                    no_birthday.add(run_pair(lab, tmp, *hosts, servers, extra=["--no-birthday"]))
                    cones.add(run_pair(lab, tmp, PRC, PRC2, servers))
        finally:
            server.stop()
    summaries = [s.summary() for s in (technique, no_birthday, cones)]
    for summary in summaries:
        print(
            f"  {summary['name']:<22} runs {summary['runs']:>3}  direct {summary['direct']:>3}"
            f"  relayed {summary['relayed']:>3}  failed {summary['failed']}"
            f"  connect median {summary['connect_ms_median']} ms p90 {summary['connect_ms_p90']} ms"
            f"  relay median {summary['relay_ms_median']} ms"
        )
    mine = summaries[0]
    print(
        f"  birthday success rate {mine['direct_rate']:.2f}; first hit median "
        f"{mine['hit_ms_median']} ms, direct pair median {mine['direct_after_ms_median']} ms "
        f"p90 {mine['direct_after_ms_p90']} ms after it started; probes median "
        f"{mine['probes_median']}"
    )
    print(
        "  ratio of medians, direct by birthday / relay by plain ICE (same NATs): "
        f"{ratio(mine['connect_ms_median'], summaries[1]['relay_ms_median'])}; "
        "/ direct by plain ICE (two cones): "
        f"{ratio(mine['connect_ms_median'], summaries[2]['connect_ms_median'])}"
    )
    for samples in (technique, no_birthday, cones):
        for failure in samples.failed:
            print(f"  failed ({samples.name}): {failure}", file=sys.stderr)
    if args.json:
        print(json.dumps(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
