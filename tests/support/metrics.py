"""The Prometheus text `peerline serve --metrics-port` serves, fetched and read."""

import urllib.request


def fetch_metrics(port: int) -> str:
    """The body of GET /metrics on 127.0.0.1:`port`, as served."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample, `name{labels}` -> value (comments skipped)."""
    figures = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
    return figures
