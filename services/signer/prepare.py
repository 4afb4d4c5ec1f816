"""The signer's development start (``postline run``): the HMAC secret, the key-encryption
key for tenants' DKIM keys, a DKIM key for the fallback signing domain, and the DNS record
to publish for it.

Called only by ``postline run`` through ``StageSpec.prepare``; ``postline signer`` never
calls it and refuses to start without the secret file (the key directory may be empty: mail
then goes unsigned or fails, per ``allow_unsigned``). Keys already in the directory are
never touched; rotating is ``postline dkim keygen`` with a new selector.
"""

from __future__ import annotations

import time

from services.signer.config import load_signer_config
from services.signer.keys import (
    KeyStore,
    generate_private_key,
    key_filename,
    write_private_key,
)
from shared.addresshash import ensure_hash_key
from shared.config import Config
from shared.dkimkeys import zone_strings
from shared.sealing import ensure_kek
from shared.secretfile import ensure_secret_file


def default_selector(now: float | None = None) -> str:
    """A selector named by month (``s202611``), as ``keys.py`` recommends for rotation."""
    return time.strftime("s%Y%m", time.gmtime(now))


def prepare(config: Config) -> list[str]:
    """Create the secret file and a key for ``signing_domain`` if missing; return the
    banner lines (the DKIM TXT record of each key of that domain)."""
    section = load_signer_config(config)
    lines: list[str] = ensure_kek(config)  # seals tenants' DKIM keys (shared.sealing)
    # Matches erased addresses' suppression entries (shared.addresshash); the signer and
    # ingest both read it, and the signer's prepare runs in every `postline run`.
    lines += ensure_hash_key(config)
    if ensure_secret_file(section.secret_file):
        lines.append(f"signer: wrote a new HMAC secret to {section.secret_file}")
    domain = section.signing_domain.lower().rstrip(".")
    if not domain:
        return lines
    store = KeyStore(section.keys_dir)
    store.load()
    if not store.keys_of(domain):
        name = key_filename(domain, default_selector(), "rsa")
        path = write_private_key(section.keys_dir, name, generate_private_key("rsa"))
        lines.append(f"signer: generated a DKIM key {path}")
        store.load()
    for key in store.keys_of(domain):
        lines.append(f"DKIM record to publish for {domain} (selector {key.selector}):")
        lines.append(f"  {key.name}. IN TXT {zone_strings(key.txt_record())}")
    return lines
