"""A real browser through `peerline serve`'s relay: headless Debian Chromium (driven by
Playwright, system binary) makes two RTCPeerConnections with iceTransportPolicy
'relay'; the data channel opens and carries messages both ways over TURN/UDP,
TURN/TCP and TURNS (TLS); the selected pair is relay/relay; the server's figures
account for the bytes; a wrong password is icecandidateerror 401.

What Chromium needs (found here, documented in the README): TURN on 127.0.0.1 works
as is; TURNS with a self-signed certificate fails (701) unless Chromium is told to
trust the server's key (`--ignore-certificate-errors-spki-list`)."""

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, Playwright

from tests.interop.turn_support import PASSWORD, USER, TurnServer, turn_server
from tests.support.chromium import (
    browser,
    copy_page,
    playwright,
    require_chromium,
    serve_pages,
)
from tests.support.procs import wait_until

pytestmark = pytest.mark.interop

PAGE = Path(__file__).parent.parent / "support" / "turn_relay.html"
MESSAGES = 20


def spki_pin(certificate: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list
    takes."""
    key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    require_chromium()
    with turn_server(tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    www = tmp_path_factory.mktemp("www")
    copy_page(PAGE, www)
    with serve_pages(www) as base:
        yield f"{base}/{PAGE.name}"


@pytest.fixture(scope="module")
def driver(server: TurnServer) -> Iterator[Playwright]:
    with playwright() as running:
        yield running


def open_page(chromium: Browser, url: str) -> Page:
    page = chromium.new_page()
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def page(
    server: TurnServer, driver: Playwright, site: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Page]:
    """The page in a Chromium that trusts the server's self-signed key for TURNS."""
    pin = spki_pin(server.log.parent / "cert.pem")
    directory = tmp_path_factory.mktemp("chromium")
    with browser(driver, directory, [f"--ignore-certificate-errors-spki-list={pin}"]) as chromium:
        yield open_page(chromium, site)


def ice_servers(url: str, password: str = PASSWORD) -> list[dict[str, str]]:
    return [{"urls": url, "username": USER, "credential": password}]


def urls(server: TurnServer) -> dict[str, str]:
    return {
        "udp": f"turn:127.0.0.1:{server.port}?transport=udp",
        "tcp": f"turn:127.0.0.1:{server.port}?transport=tcp",
        "tls": f"turns:127.0.0.1:{server.tls_port}?transport=tcp",
    }


def relayed(figures: dict[str, float], kind: str, direction: str) -> float:
    return figures.get(f'peerline_turn_relayed_{kind}_total{{direction="{direction}"}}', 0.0)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_data_channel_through_the_relay(server: TurnServer, page: Page, transport: str) -> None:
    before = server.metrics()
    result = page.evaluate(
        "([servers, count]) => relayCall(servers, count)",
        [ice_servers(urls(server)[transport]), MESSAGES],
    )
    after = server.metrics()
    assert result["errors"] == []
    assert sorted(result["atB"]) == sorted(f"a to b {i}" for i in range(MESSAGES))
    assert sorted(result["atA"]) == sorted(f"b to a {i}" for i in range(MESSAGES))
    for side in ("a", "b"):
        assert all(" typ relay " in line for line in result["gathered"][side])
    for pair in (result["pairA"], result["pairB"]):
        assert pair["state"] == "succeeded"
        assert pair["local"]["candidateType"] == "relay"
        assert pair["remote"]["candidateType"] == "relay"
        assert pair["local"]["relayProtocol"] == transport
        assert pair["local"]["address"] == "127.0.0.1"
    created = 'peerline_turn_allocation_events_total{event="created"}'
    assert after[created] - before[created] == 2  # one allocation per peer connection
    sent = result["pairA"]["bytesSent"] + result["pairB"]["bytesSent"]
    received = result["pairA"]["bytesReceived"] + result["pairB"]["bytesReceived"]
    # Every byte the browsers sent on their selected pairs crossed the relay twice:
    # into the sender's allocation (to a peer) and out of the receiver's (from a peer).
    assert relayed(after, "bytes", "to_peer") - relayed(before, "bytes", "to_peer") >= sent
    assert relayed(after, "bytes", "from_peer") - relayed(before, "bytes", "from_peer") >= received
    assert relayed(after, "packets", "to_peer") - relayed(before, "packets", "to_peer") >= MESSAGES
    # Closing the peer connections deallocates (Refresh with lifetime 0).
    wait_until(
        lambda: (
            server.metrics()["peerline_turn_allocations"] == before["peerline_turn_allocations"]
        ),
        10,
        "Chromium to release its allocations",
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_wrong_password_is_icecandidateerror_401(
    server: TurnServer, page: Page, transport: str
) -> None:
    before = server.metrics()
    result = page.evaluate(
        "([servers, ms]) => gatherErrors(servers, ms)",
        [ice_servers(urls(server)[transport], password="not the password"), 8000],
    )
    after = server.metrics()
    assert result["candidates"] == []
    assert {error["code"] for error in result["errors"]} == {401}
    assert after["peerline_turn_allocations"] == before["peerline_turn_allocations"]
    bad = 'peerline_turn_refusals_total{reason="bad-integrity"}'
    assert after.get(bad, 0) > before.get(bad, 0)  # refused for this transport's requests


def test_turns_needs_the_servers_key_trusted(
    server: TurnServer, driver: Playwright, site: str, tmp_path: Path
) -> None:
    """Without the pin, Chromium refuses the self-signed certificate: 701, no candidate."""
    with browser(driver, tmp_path) as chromium:
        result = open_page(chromium, site).evaluate(
            "([servers, ms]) => gatherErrors(servers, ms)",
            [ice_servers(urls(server)["tls"]), 8000],
        )
    assert result["candidates"] == []
    assert {error["code"] for error in result["errors"]} == {701}
