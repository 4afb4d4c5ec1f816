"""The files a Postline cluster needs before it starts, made the way an operator makes them.

- DKIM keys for the sender domain, RSA-2048 and Ed25519 (one selector each), written by the
  signer's own key generation code (what ``postline dkim keygen`` runs), and their TXT records
  for the harness's DNS server;
- the HMAC secret shared by the signer and the bouncer;
- a test CA and a server certificate for ingest's STARTTLS (``testing.pki``);
- a users file with one AUTH user, written by ingest's ``user add`` code.

It does not write the config (``config.py``) nor start anything (``cluster.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from services.ingest.users import add_user
from services.signer.keys import (
    ALGORITHMS,
    generate_private_key,
    key_filename,
    parse_key_file,
    write_private_key,
)
from testing.pki import Pki, make_pki

USER = "app"
PASSWORD = "correct horse battery staple"
SELECTOR = "h1"  # the RSA key is h1rsa, the Ed25519 key h1ed25519


@dataclass(frozen=True)
class Materials:
    """Paths and values written into one cluster's work directory."""

    keys_dir: Path
    secret_file: Path
    secret: bytes
    pki: Pki
    users_file: Path
    user: str
    password: str
    dkim_txt: dict[str, str]  # DNS name -> TXT value, one per key


def make_materials(workdir: Path, sender_domain: str, selector: str = SELECTOR) -> Materials:
    """Write keys, secret, certificates and users under ``workdir``."""
    keys_dir = workdir / "keys"
    txt: dict[str, str] = {}
    for algorithm in ALGORITHMS:
        # RFC 8463 dual signing: each algorithm needs its own selector, since a verifier
        # reads one key record per selector (RFC 6376 3.6.2.2).
        name = key_filename(sender_domain, f"{selector}{algorithm}", algorithm)
        path = write_private_key(keys_dir, name, generate_private_key(algorithm))
        key = parse_key_file(path)
        txt[key.name] = key.txt_record()
    secret = secrets.token_hex(32).encode()
    secret_file = workdir / "secrets" / "verp.key"
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    secret_file.write_bytes(secret + b"\n")
    users_file = workdir / "users.json"
    add_user(users_file, USER, [sender_domain], PASSWORD)
    return Materials(
        keys_dir=keys_dir,
        secret_file=secret_file,
        secret=secret,
        pki=make_pki(workdir / "tls"),
        users_file=users_file,
        user=USER,
        password=PASSWORD,
        dkim_txt=txt,
    )
