"""The bulk-backlog mode of ``make bench`` (``--bulk-backlog N``): what a bulk backlog to a
domain costs transactional mail to the same domain (issue 13, priority lanes).

One destination, ``d0.bench``, is shaped like a provider that limits us
(``--backlog-connections`` connections, ``--backlog-rate`` messages a minute), so a backlog
to it lasts. The transactional load (``--messages`` over ``--sessions``, ``--pause`` seconds
apart, below that rate) runs twice on the same cluster: alone, then after N bulk messages
(``Precedence: bulk``: the signer puts them in the bulk lane) were accepted and signed, so
they wait in ``postline.outbound.bulk`` and the deliverer is working through them. Each run
reports the transactional accept-to-delivered p50/p99 (sink receive time minus the 250's
time, by Message-ID); the backlog part says how much of the backlog was still waiting when
the transactional run ended (0 would make the figure meaningless).

Waiting for the signer before the second run is deliberate: the lanes split after signing
(the signer decides what is bulk), so this measures the delivery backlog, the one that lasts
hours behind a provider's limits; a burst still being signed delays everything submitted
behind it for the time signing takes (the signer scales on its lag).

Owns only this scenario; the stack, load and sink are ``bench_pipeline.py``'s, the figures
``measure.py``'s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from bench.load import LoadSpec, run_load
from bench.sink import Sink
from bench.stack import Stack

BACKLOG_DOMAIN = "d0.bench"
BULK_HEADERS = "Precedence: bulk\r\n"


def backlog_env(connections: int, rate: float) -> dict[str, str]:
    """The deliverer settings of the scenario, as environment overrides (as Kubernetes sets
    them): the limited destination, and the product's window-full delay."""
    policy = f"max_connections = {connections}, messages_per_minute = {rate}"
    return {
        "POSTLINE__DELIVERER__DOMAINS": f'{{ "{BACKLOG_DOMAIN}" = {{ {policy} }} }}',
        "POSTLINE__DELIVERER__WINDOW_FULL_DELAY": '"5s"',
    }


def signed(stack: Stack) -> float:
    """Submissions the signer has finished with (signed, unsigned, failed or suppressed)."""
    return stack.metric("signer", "postline_signer_messages_total")


def queue_backlog(stack: Stack, spec: LoadSpec, count: int, timeout: float) -> dict[str, Any]:
    """Submit ``count`` bulk messages to the backlog domain and wait until all are signed
    (waiting in the bulk lane); what it took."""
    before = signed(stack)
    bulk = replace(
        spec,
        messages=count,
        sessions=10,
        pause=0.0,
        headers=BULK_HEADERS,
        rcpts=1,
        domains=(BACKLOG_DOMAIN,),
    )
    started = time.monotonic()
    load = asyncio.run(run_load(bulk))
    deadline = started + timeout
    while signed(stack) < before + load.accepted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the signer did not sign {load.accepted} bulk messages in time")
        time.sleep(0.2)
    return {
        "bulk_accepted": load.accepted,
        "bulk_failed": load.failed,
        "bulk_accepted_per_s": round(load.rate, 1),
        "bulk_signed_after_s": round(time.monotonic() - started, 2),
        "bulk_ids": set(load.accepted_at),
    }


def backlog_left(sink: Sink, ids: set[str]) -> int:
    """Bulk messages of the backlog the sink has not received yet."""
    return len(ids - {r.message_id for r in sink.receipts()})


def transactional_spec(spec: LoadSpec, pause: float) -> LoadSpec:
    """The transactional load: to the backlog domain, paced."""
    return replace(spec, domains=(BACKLOG_DOMAIN,), pause=pause, headers="")


def lanes_figures(
    alone: dict[str, Any], behind: dict[str, Any], backlog: dict[str, Any]
) -> dict[str, Any]:
    """The lanes figures for the results document."""
    keys = ("accepted", "e2e_p50_ms", "e2e_p99_ms", "missing_messages", "duplicate_recipients")
    return {
        "domain": BACKLOG_DOMAIN,
        "transactional_alone": {k: alone[k] for k in keys},
        "transactional_with_backlog": {k: behind[k] for k in keys},
        "p99_ratio": round(behind["e2e_p99_ms"] / max(alone["e2e_p99_ms"], 1e-9), 2),
        "backlog": {k: v for k, v in backlog.items() if k != "bulk_ids"},
    }


def print_lanes(lanes: dict[str, Any]) -> None:
    """The comparison, a few lines."""
    alone, behind = lanes["transactional_alone"], lanes["transactional_with_backlog"]
    backlog = lanes["backlog"]
    print(
        f"\ntransactional to {lanes['domain']} accept->delivered: alone p50 "
        f"{alone['e2e_p50_ms']} ms p99 {alone['e2e_p99_ms']} ms; behind a bulk backlog of "
        f"{backlog['bulk_accepted']} p50 {behind['e2e_p50_ms']} ms p99 {behind['e2e_p99_ms']} ms "
        f"(p99 x{lanes['p99_ratio']}); bulk still waiting when the transactional run ended: "
        f"{backlog['left_after_run']}"
    )
    if not backlog["left_after_run"]:
        print("WARNING: the backlog was gone before the run ended: raise --bulk-backlog")
