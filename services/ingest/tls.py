"""The server TLS context: TLS 1.2+ from certificate and key files, reloaded in place.

One ``ssl.SSLContext`` serves every listener (STARTTLS and implicit TLS). Reloading calls
``load_cert_chain`` on that same object, so new handshakes use the renewed certificate while
established sessions keep theirs; no listener is rebound. A reload that fails (a half-written
file during renewal) keeps the previous certificate and logs why. Missing or unreadable files
at startup are a :class:`ConfigError` naming the key and the file.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from services.ingest.config import TlsConfig
from shared.errors import ConfigError

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _stamp(paths: tuple[Path, Path]) -> tuple[int, ...]:
    stamp: list[int] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            return ()
        stamp += [stat.st_mtime_ns, stat.st_size, stat.st_ino]
    return tuple(stamp)


class TlsFiles:
    """The server context and the files it came from."""

    def __init__(self, config: TlsConfig, source: str, log: logging.Logger) -> None:
        if config.cert is None or config.key is None:
            raise ConfigError(source, "ingest.tls", "cert and key must both be set")
        self.paths = (config.cert, config.key)
        self.interval = float(config.watch_interval)
        self.log = log
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = _VERSIONS[config.min_version]
        # RFC 7525 3.1.1 / RFC 8996: no compression, no renegotiation, never below TLS 1.2.
        self.context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        # TLS 1.2 suites: forward secrecy and AEAD only (RFC 7525 4.2, RFC 9325 4.2); no CBC
        # (Lucky 13, padding oracles). TLS 1.3 suites are all AEAD and set apart by OpenSSL.
        self.context.set_ciphers(TLS12_CIPHERS)
        self._source = source
        self._stamp: tuple[int, ...] = ()
        self._load(startup=True)

    def _load(self, *, startup: bool) -> None:
        cert, key = self.paths
        for name, path in (("cert", cert), ("key", key)):
            if not path.is_file():
                raise ConfigError(self._source, f"ingest.tls.{name}", f"{path}: no such file")
        stamp = _stamp(self.paths)
        try:
            self.context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            where = f"{cert} / {key}"
            raise ConfigError(self._source, "ingest.tls", f"{where}: cannot load: {exc}") from exc
        self._stamp = stamp
        if not startup:
            self.log.info("TLS certificate reloaded", extra={"cert": str(cert)})

    def reload(self) -> None:
        """Re-read the files (SIGHUP); on failure keep the old certificate and log why."""
        try:
            self._load(startup=False)
        except ConfigError as exc:
            self.log.error(
                "TLS reload failed, keeping the previous certificate", extra={"error": str(exc)}
            )

    def changed(self) -> bool:
        """Whether the files differ from what was last loaded."""
        stamp = _stamp(self.paths)
        return bool(stamp) and stamp != self._stamp

    async def watch(self, stopping: asyncio.Event) -> None:
        """Reload whenever the files change, until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.interval)
            except TimeoutError:
                if self.changed():
                    self.reload()
