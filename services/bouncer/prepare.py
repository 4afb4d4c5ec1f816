"""The bouncer's development start (``postline run``): the HMAC secret it shares with the
signer, and the banner line naming its SMTP intake.

Called only by ``postline run`` through ``StageSpec.prepare``; ``postline bouncer`` never
calls it and refuses to start without the secret file.
"""

from __future__ import annotations

from services.bouncer.config import load_bouncer_config
from shared.config import Config
from shared.secretfile import ensure_secret_file


def prepare(config: Config) -> list[str]:
    """Create the secret file if missing; say where bounces and complaints are received."""
    section = load_bouncer_config(config)
    lines: list[str] = []
    if ensure_secret_file(section.secret_file):
        lines.append(f"bouncer: wrote a new HMAC secret to {section.secret_file}")
    lines.append(
        f"bounces, DSNs and complaints for {section.bounce_domain}: "
        f"SMTP {section.listen_host}:{section.listen_port}"
    )
    return lines
