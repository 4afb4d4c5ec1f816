"""``postline webhooks replay``: send a time range of a tenant's events again.

Reads ``postline.events`` (kept 14 days: ``EVENTS``'s retention) from ``since`` (each
partition from its first record published at or after it: Kafka's offsets for times, the
embedded bus's timestamps) to its end, and writes one retry record per event in ``[since,
until)`` and matching endpoint onto the first retry tier, due at once; the running stage
sends them like any retry. Each carries the event's id (derived from its bytes on the topic),
so a receiver that got the event before drops the copy. The time compared is the event's
own ``at``; an event is published after its ``at`` by the same process, so starting the read
at ``since`` (less ``SKEW`` for clocks that disagree between hosts) misses none.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.webhooks.endpoints import wants
from services.webhooks.payload import item_of
from services.webhooks.retry import attempt_of
from shared.bus.base import Bus
from shared.errors import DecodeError
from shared.wire.records import DEFAULT_TENANT, Tenant, WebhookAttempt, WebhookEndpoint
from shared.wire.topics import EVENTS, OutRecord, Topic

#: Records per publish.
CHUNK = 500
#: Read from this long before ``since``: producers' clocks may differ by some seconds.
SKEW = 60.0


def _matches(endpoints: Sequence[WebhookEndpoint], kind: str) -> list[WebhookEndpoint]:
    return [e for e in endpoints if wants(e, kind)]


async def replay(
    bus: Bus,
    tenant: Tenant,
    tier: Topic[WebhookAttempt],
    *,
    since: float,
    until: float,
    endpoint: str = "",
) -> int:
    """Queue the tenant's events of ``[since, until)`` for its endpoints (or ``endpoint``);
    returns how many retry records were written."""
    chosen = [e for e in tenant.webhooks if not endpoint or e.id == endpoint]
    written = 0
    pending: list[OutRecord] = []
    async for message in bus.read_to_end(EVENTS.name, since=max(0.0, since - SKEW)):
        if message.value is None:
            continue
        try:
            event = EVENTS.decode(message.value)
        except DecodeError:
            continue
        if (event.tenant or DEFAULT_TENANT) != tenant.id or not since <= event.at < until:
            continue
        targets = _matches(chosen, event.kind)
        if not targets:
            continue
        item = item_of(event, message.value)
        pending += [tier.out(attempt_of(tenant.id, e.id, item)) for e in targets]
        if len(pending) >= CHUNK:
            await bus.publish(pending)
            written += len(pending)
            pending = []
    if pending:
        await bus.publish(pending)
        written += len(pending)
    return written
