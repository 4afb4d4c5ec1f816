"""The deliverer's banner line for ``postline run``: where mail goes.

Nothing to create (the deliverer reads no key or secret file); the line says whether mail
goes to the recipients' MX hosts or to a smarthost route (``postline run --deliver-to``).
"""

from __future__ import annotations

from services.deliverer.config import load
from shared.config import Config


def prepare(config: Config) -> list[str]:
    """One banner line per route, or the MX line when there is no catch-all route."""
    section = load(config)
    lines = [
        f"delivery: mail for {', '.join(route.domains)} goes to smarthost {route.host}"
        for route in section.routes
    ]
    if not any("*" in route.domains for route in section.routes):
        lines.append(
            f"delivery: to the recipients' MX hosts on port {section.smtp_port} "
            "(no internet? postline run --deliver-to HOST:PORT)"
        )
    return lines
