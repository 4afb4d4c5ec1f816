"""A deliverer that runs until it is killed (for ``test_drain``).

    python -m tests.services.deliverer.kill_target <dir> '<[deliverer] section JSON>' [KAFKA]

``KAFKA``: JSON ``{"bootstrap": ..., "topic_prefix": ..., "instance": ...}`` to run on Kafka
instead of the embedded bus in ``<dir>``. Prints ``ready`` once the stage serves.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from shared.config import KafkaConfig
from tests.services.deliverer.harness import running_deliverer


async def main(directory: Path, section: dict[str, Any], kafka: dict[str, str] | None) -> None:
    """Run until killed."""
    config = instance = None
    if kafka is not None:
        config = KafkaConfig(bootstrap=kafka["bootstrap"], topic_prefix=kafka["topic_prefix"])
        instance = kafka["instance"]
    async with running_deliverer(directory, section, kafka=config, instance=instance or ""):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2]), extra))
