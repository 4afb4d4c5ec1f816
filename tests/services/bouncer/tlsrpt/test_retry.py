"""A failed send is retried (with the configured backoff) until it is taken (a mail already
submitted is not submitted again), and given up after ``retry_for``: the day is then
settled as failed and not tried again; a domain without a _smtp._tls record is settled as
no_rua. Embedded bus (the bus's part is proved on both kinds by test_stage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.tlsrpt.counts import DAY, day_start
from shared.bus.base import Bus
from shared.wire.topics import EVENTS, SUBMITTED, TLSRPT
from testing.buses import bus_of_kind
from testing.dnsserver import DnsServer
from tests.services.bouncer.tlsrpt.conftest import (
    DELAY,
    Capture,
    Clock,
    publish,
    session,
    start,
    table,
    tlsrpt_config,
    totals,
    until,
)

START = day_start("2026-07-01")


@pytest.fixture
async def embedded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind("embedded", request, tmp_path, "tlsrpt", partitions=2)
    await opened.start()
    await opened.ensure_topics([EVENTS.name, TLSRPT.name, SUBMITTED.name])
    yield opened
    await opened.close()


def sample(registry: CollectorRegistry, via: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "postline_bouncer_tlsrpt_reports_total", {"via": via, "outcome": outcome}
    )
    return value or 0.0


async def test_retried_until_taken_given_up_after_retry_for(
    embedded: Bus, tmp_path: Path, capture: Capture
) -> None:
    records = {
        "_smtp._tls.flaky.test": [("TXT", f'"v=TLSRPTv1; rua={capture.url("r")}"')],
        # Mail and HTTPS: the mail goes once, though the POST is tried again.
        "_smtp._tls.both.test": [
            ("TXT", f'"v=TLSRPTv1; rua=mailto:r@both.test,{capture.url("both")}"')
        ],
        # Nothing listens on port 1: every POST fails.
        "_smtp._tls.gone.test": [("TXT", '"v=TLSRPTv1; rua=https://127.0.0.1:1/r"')],
    }
    async with DnsServer(records) as dns:
        config = tlsrpt_config(tmp_path, capture.pki.ca, dns.port, 'retry_for = "1h"')
        clock = Clock(START + 100)
        running = await start(embedded, config, clock)
        domains = ("both.test", "flaky.test", "gone.test", "silent.test")
        events = [session(d, START + 10) for d in domains]
        await publish(embedded, events)

        async def counted() -> bool:
            return all([await totals(embedded, d) == (1, 0) for d in domains])

        await until(counted, "counted")
        capture.fail_next = 2  # both.test's first POST, then flaky.test's (in that order)
        clock.now = START + DAY + DELAY

        async def states() -> dict[str, str]:
            return {r.domain: r.state for r in (await table(embedded)).values() if r.day}

        async def first_settled() -> bool:
            found = await states()
            return (
                found.get("flaky.test") == found.get("both.test") == "sent"
                and found.get("silent.test") == "no_rua"
            )

        await until(first_settled, "flaky.test and both.test sent on a retry, silent.test not")
        assert sorted(path for path, _, _ in capture.requests) == ["both", "both", "r", "r"]
        assert len(capture.accepted) == 2
        mailed = [SUBMITTED.decode(v) for v in (await embedded.read_table(SUBMITTED.name)).values()]
        assert [s.rcpt_to for s in mailed] == [("r@both.test",)]
        registry = running.ctx.registry
        assert sample(registry, "https", "sent") == 2
        assert sample(registry, "mailto", "sent") == 1
        assert sample(registry, "https", "retry") >= 3  # flaky and both once, gone too
        assert (await states())["gone.test"] == "counts"  # still being retried

        clock.now = START + DAY + DELAY + 3600  # retry_for is over

        async def gone_failed() -> bool:
            return (await states()).get("gone.test") == "failed"

        await until(gone_failed, "gone.test given up")
        assert sample(registry, "https", "failed") == 1
        assert running.stage.tlsrpt is not None
        assert await running.stage.tlsrpt.sender.tick() == 0  # all settled: nothing to do
        await running.stop()
        assert len(capture.accepted) == 2
