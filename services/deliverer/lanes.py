"""Priority lanes: transactional and bulk mail never share a queue.

Owns: :class:`Lane` and the two lanes, each an outbound topic read by its own consumer group
with its own :class:`~services.deliverer.engine.Engine` (domain queues, windows) and its own
in-flight budget (``max_in_flight``, ``bulk_max_in_flight``):

- **transactional**: ``postline.outbound``, group ``postline-deliverer``: password resets,
  receipts, DSNs, everything not known to be bulk;
- **bulk**: ``postline.outbound.bulk``, group ``postline-deliverer-bulk``: what the signer
  found to be bulk (the tenant's settings, an ``X-Postline-Bulk`` tag, a bulk rule, or the
  message's own ``Precedence: bulk`` or ``List-Unsubscribe``).

Why two topics rather than a priority field on one: a Kafka partition is FIFO and a consumer
reads it in order, so a transactional record behind a million bulk records for gmail.com
(one key, one partition) waits until they are all fetched, however urgent its field says it
is; the deliverer holds only a bounded window in memory (Postfix qmgr's active queue), so it
cannot read past the backlog to find it. With a topic per lane the transactional record is
fetched at once by its own consumer, and a bulk backlog fills only the bulk lane's fetches,
windows and in-flight budget. KumoMTA (a queue per tenant and campaign) and PowerMTA
(virtual MTA queues) separate traffic the same way.

The lanes share what belongs to the destination: connection slots, pacing and throttle state
(``shaping.py``), where transactional work goes first. Retried mail goes back to the lane it
came from (``retry.py``, by ``Delivery.bulk``). Does not decide what is bulk (the signer does).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.wire.records import Delivery
from shared.wire.topics import OUTBOUND, OUTBOUND_BULK, Topic


@dataclass(frozen=True)
class Lane:
    """One lane: its topic, consumer group and the ``lane`` metric label."""

    name: str
    topic: Topic[Delivery]
    group: str
    bulk: bool


TRANSACTIONAL = Lane("transactional", OUTBOUND, "postline-deliverer", bulk=False)
BULK = Lane("bulk", OUTBOUND_BULK, "postline-deliverer-bulk", bulk=True)
LANES = (TRANSACTIONAL, BULK)


def lane_name(delivery: Delivery) -> str:
    """The ``lane`` metric label of ``delivery``."""
    return BULK.name if delivery.bulk else TRANSACTIONAL.name
