"""The store stage alone in a process of its own, for tests that kill it (SIGKILL: no drain,
no offset commit after its last database commit). Built through its module, as the runtime
would through the entry point:

    python -m testing.storeproc /path/to/postline.toml
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from services.store.stage import create
from shared.bus.factory import open_bus
from shared.config import load_config
from testing.stage import stage_context


async def main(path: Path) -> None:
    """Run the stage on the config's bus until the process is killed."""
    config = load_config(path, environ={})
    bus = open_bus(config)
    await bus.start()
    ctx = stage_context("store", config, bus)
    stage = await create(ctx)
    await stage.run(ctx)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
