"""Choose the bus a process uses from its config (``[bus] kind``).

Owns only the choice and the adapter's constructor arguments, among them whether this
process owns an embedded bus file (runs stages: one such process per file, see
``shared.bus.embedded_lock``) or is a client beside the owner (the CLI's read and admin
commands). Each adapter is imported
when chosen, so a process on the embedded bus never loads aiokafka and a Kafka process
never opens SQLite.
"""

from __future__ import annotations

import socket

from shared.bus.base import Bus
from shared.config import Config


def open_bus(config: Config, *, owner: bool = True, shared_file: bool = False) -> Bus:
    """A new, not yet started bus for ``config`` (``await bus.start()`` connects it).

    ``owner``: this process runs stages; on the embedded bus it takes the file's owner lock,
    so a second such process is refused. ``owner=False`` is for clients that never join a
    consumer group (``events tail``, ``suppress list``): they work beside a running
    ``postline run``. Kafka has no owner (its groups are the broker's): the flag is ignored.
    ``shared_file``: this process is one of several stage processes on one embedded file (a
    ``postline run`` spread over processes): it watches for the others' commits.
    """
    core = config.core
    if core.bus.kind == "kafka":
        from shared.bus.kafka import KafkaBus  # noqa: PLC0415 (load aiokafka only when used)

        # The instance id names the transactional ids: it must be stable across restarts of
        # one process (the pod name in Kubernetes) so a restart fences its predecessor. A
        # configured one is taken to be stable, so it is also the group.instance.id of
        # static membership ("auto"); a host name may be a Deployment's random pod name.
        instance = core.runtime.instance or socket.gethostname()
        mode = core.kafka.static_membership
        static = mode == "on" or (mode == "auto" and bool(core.runtime.instance))
        return KafkaBus(core.kafka, instance=instance, static_members=static)
    from shared.bus.embedded import EmbeddedBus  # noqa: PLC0415 (stdlib sqlite only)

    return EmbeddedBus(core.embedded, lock=owner, watch_others=shared_file)
