"""The SSRF rules on the https rua a recipient domain publishes: by default a report is
never POSTed to a loopback or private address, whether the URL names it or a name resolves
to it; ``allow_private_networks`` (labs, tests) lets it through."""

from __future__ import annotations

import pytest

from services.bouncer.tlsrpt.https import HttpsReporter, ReportNotPosted
from shared.netguard import Policy
from tests.services.bouncer.tlsrpt.conftest import Capture


def reporter(capture: Capture, guard: Policy) -> HttpsReporter:
    return HttpsReporter(timeout=5.0, ca_file=capture.pki.ca, user_agent="test", guard=guard)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_rua_on_our_own_network_is_refused(capture: Capture, host: str) -> None:
    https = reporter(capture, Policy())
    await https.start()
    try:
        with pytest.raises(ReportNotPosted, match="refused"):
            await https.post(f"https://{host}:{capture.port}/report", b"report")
    finally:
        await https.close()
    assert capture.requests == []


async def test_allow_private_networks_lets_a_lab_receiver_through(capture: Capture) -> None:
    https = reporter(capture, Policy(allow_private_networks=True))
    await https.start()
    try:
        await https.post(capture.url("report"), b"report")
    finally:
        await https.close()
    assert capture.accepted == [b"report"]
