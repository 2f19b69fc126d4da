"""How a NAT report reads to a person: a short, plain summary."""

from peerline.nat.classify import Behaviour, NatReport


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return "not tested"
    return yes if value else no


def _behaviour(value: Behaviour | None) -> str:
    return "not tested" if value is None else str(value)


def render(report: NatReport) -> list[str]:
    """The report as lines for a terminal."""
    if not report.udp:
        return [f"UDP:                blocked ({report.meaning})"]
    lifetime = (
        "not measured (use --lifetime)"
        if report.binding_lifetime_s is None
        else f"{report.binding_lifetime_s:g} s"
    )
    lines = [
        "UDP:                reachable",
        f"public address:     {report.public_address}",
        f"NAT:                {_yes_no(report.nat, 'yes', 'no (this host has a public address)')}",
        f"mapping:            {_behaviour(report.mapping)}",
        f"filtering:          {_behaviour(report.filtering)}",
        f"hairpinning:        {_yes_no(report.hairpinning)}",
        f"port preservation:  {_yes_no(report.port_preservation)}",
        f"address-rewriting ALG: {_yes_no(report.alg, 'yes (MAPPED-ADDRESS rewritten)', 'no')}",
        f"binding lifetime:   {lifetime}",
        f"type:               {report.classic_type or 'unknown'}",
        f"group:              {report.group or 'unknown'}",
        "",
        report.meaning,
    ]
    if report.skipped:
        lines.append("")
        lines.extend(f"not tested: {reason}" for reason in report.skipped)
    return lines
