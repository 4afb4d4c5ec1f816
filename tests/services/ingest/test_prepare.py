"""Ingest's ``postline run`` preparation: a self-signed certificate ingest can load, an empty
users file, and the lines saying where to send mail."""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

from cryptography import x509

from services.ingest.auth import read_users
from services.ingest.config import ScanningConfig, load
from services.ingest.prepare import prepare, scanning_line
from services.ingest.tls import TlsFiles
from shared.config import load_config

CONFIG = """
[ingest]
hostname = "postline.localhost"
users_file = "{d}/users.json"
trusted_networks = ["127.0.0.0/8"]
listeners = [
  {{name = "relay", host = "127.0.0.1", port = 2525, mode = "relay"}},
  {{name = "submission", host = "127.0.0.1", port = 2587, mode = "submission"}},
]
[ingest.tls]
cert = "{d}/tls/cert.pem"
key = "{d}/tls/key.pem"
[signer]
signing_domain = "postline.localhost"
"""


def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(CONFIG.format(d=tmp_path))
    return path


def test_creates_a_loadable_self_signed_certificate_and_users_file(tmp_path: Path) -> None:
    config = load_config(config_path(tmp_path))
    lines = prepare(config)
    section = load(config)
    files = TlsFiles(section.tls, config.source, logging.getLogger("test"))
    assert isinstance(files.context, ssl.SSLContext)
    assert (tmp_path / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"postline.localhost", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert read_users(tmp_path / "users.json").users == {}
    assert any(line.startswith("ingest: wrote a self-signed") for line in lines)


def test_banner_lines_say_where_to_send_mail(tmp_path: Path) -> None:
    lines = prepare(load_config(config_path(tmp_path)))
    text = "\n".join(lines)
    assert "swaks --server 127.0.0.1:2525 --from app@postline.localhost" in text
    assert 'smtplib.SMTP("127.0.0.1", 2525)' in text
    assert "submission with STARTTLS + AUTH: 127.0.0.1:2587" in text
    assert (
        f"--config {tmp_path / 'postline.toml'} user add NAME --domain postline.localhost" in text
    )


def test_existing_files_are_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_text("operator's cert")
    (tmp_path / "users.json").write_text('{"users": {}}')
    lines = prepare(load_config(config_path(tmp_path)))
    assert (tmp_path / "tls" / "cert.pem").read_text() == "operator's cert"
    assert not (tmp_path / "tls" / "key.pem").exists()
    assert not any("wrote" in line for line in lines)


def test_the_banner_says_whether_mail_is_scanned_and_how_to_turn_it_on(rspamd_url: str) -> None:
    assert scanning_line(ScanningConfig()).startswith("content scanning: off (start rspamd")
    assert scanning_line(ScanningConfig(url=rspamd_url + "/")) == (
        f"content scanning: on, rspamd at {rspamd_url} (mode enforce)"
    )
    with socket.socket() as sock:  # bound, not listening: refuses connections
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert scanning_line(ScanningConfig(url=down, probe_at_start=True)) == (
            f"content scanning: off for this run, no rspamd at {down} (`make rspamd-up`)"
        )
        assert scanning_line(ScanningConfig(url=down, on_failure="closed")) == (
            f"content scanning: rspamd at {down} does not answer, mail is deferred with 451 "
            "until it does"
        )
