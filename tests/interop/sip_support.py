"""What the SIP interop tests share: reading `peerline serve`'s own figures."""

import urllib.request


def serve_metric(metrics_port: int, name: str) -> float:
    """One unlabelled sample from `peerline serve --metrics-port` (Prometheus text)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    [line] = [x for x in text.splitlines() if x.startswith(f"{name} ")]
    return float(line.split()[1])
