"""Typed configuration: one TOML file decoded into msgspec Structs, strictly.

- Unknown keys are errors; numbers have bounds; durations are strings like ``"5m"``.
- Environment variables override the file for Kubernetes: ``POSTLINE__KAFKA__BOOTSTRAP=h:9092``
  sets ``kafka.bootstrap``. A value is read as a TOML literal when it parses as one
  (``10``, ``true``, ``["a", "b"]``) and as a string otherwise.
- Every error is a :class:`ConfigError` naming the file (or variable) and the key path.

Each stage declares its own section type (``services/<stage>/config.py``) and decodes it
with :meth:`Config.section`; this module knows only the sections every stage shares.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from shared.errors import ConfigError
from shared.pools import PoolsConfig

T = TypeVar("T")

ENV_PREFIX = "POSTLINE__"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_UNIT_BYTES = {
    "B": 1,
    "k": 1024,
    "K": 1024,
    "KiB": 1024,
    "KB": 1000,
    "M": 1024**2,
    "MiB": 1024**2,
    "MB": 1000**2,
    "G": 1024**3,
    "GiB": 1024**3,
    "GB": 1000**3,
}


class Duration(float):
    """Seconds, written in config as ``"30s"``, ``"5m"``, ``"2h"``, ``"3d"`` or a number."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Parse a duration; raises ``ValueError`` with a readable message."""
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30s' or '5m', got {value!r}")
        if isinstance(value, int | float):
            return cls(value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                return cls(float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"])
        raise ValueError(f"expected a duration like '30s' or '5m', got {value!r}")


class ByteSize(int):
    """Bytes, written in config as ``"25MiB"``, ``"512KiB"`` or a number."""

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        """Parse a size; raises ``ValueError`` with a readable message."""
        if isinstance(value, bool):
            raise ValueError(f"expected a size like '25MiB', got {value!r}")
        if isinstance(value, int):
            return cls(value)
        if isinstance(value, str):
            match = _SIZE.match(value)
            if match:
                return cls(int(match.group(1)) * _UNIT_BYTES[match.group(2) or "B"])
        raise ValueError(f"expected a size like '25MiB', got {value!r}")


def _dec_hook(typ: type, value: Any) -> Any:
    if typ is Duration:
        return Duration.parse(value)
    if typ is ByteSize:
        return ByteSize.parse(value)
    if typ is Path:
        if isinstance(value, str):
            return Path(value)
        raise ValueError(f"expected a path, got {value!r}")
    raise NotImplementedError(f"no decoder for {typ!r}")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Duration):  # float subclasses are not encoded natively by msgspec
        return float(value)
    if isinstance(value, ByteSize):
        return int(value)
    raise NotImplementedError(f"cannot encode {type(value)!r}")


Port = Annotated[int, msgspec.Meta(ge=0, le=65535, description="TCP port (0 = any free port)")]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class KafkaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How to reach Kafka (``[kafka]``)."""

    bootstrap: str = "127.0.0.1:9092"  # comma-separated host:port list
    topic_prefix: str = ""  # prepended to every topic name on the wire
    client_id: str = "postline"  # client id on the broker; also names transactional ids
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"  # producer batches
    request_timeout: Duration = Duration(30)  # connecting and each broker request
    transaction_timeout: Duration = Duration(60)  # how long a killed producer's txn blocks readers
    #: How to talk to the brokers: TLS (``SSL``), SASL authentication, both or neither.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism with ``SASL_PLAINTEXT`` / ``SASL_SSL``.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str = ""  # SASL user name
    sasl_password_file: Path | None = None  # file holding the SASL password (first line)
    ssl_cafile: Path | None = None  # CA bundle to verify the brokers; None: system CAs
    #: Static group membership (KIP-345): every consumer joins its group with
    #: group.instance.id = runtime.instance, so a restarted pod that comes back within
    #: session_timeout gets its partitions back without a rebalance of the group. "auto": on
    #: when runtime.instance is set (a StatefulSet's pod name, through the downward API),
    #: off when it falls back to the host name; "on" / "off" force it.
    static_membership: Literal["auto", "on", "off"] = "auto"
    #: A member silent this long is dropped from its group and its partitions move (a static
    #: member, which does not leave on shutdown, too). The broker allows 6s to 30m.
    session_timeout: Duration = Duration(10)

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        # Kafka's group.min/max.session.timeout.ms defaults: a value outside is refused.
        if not 6 <= self.session_timeout <= 1800:
            raise ValueError(
                f"session_timeout must be between 6s and 1800s, got {self.session_timeout:g}s"
            )


class EmbeddedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The embedded SQLite queue (``[embedded]``)."""

    path: Path = Path("data/postline.db")  # the SQLite file (created with its directory)
    partitions: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4  # per topic, fixed at first use
    retention: Duration = Duration(7 * 86400)  # consumed records older than this are deleted
    #: Most bytes the file may hold ("2GiB"; 0: until the disk is full). Past it, as on a
    #: full disk, nothing more is written: ingest answers 452 4.3.1 and stages wait until
    #: retention (or the operator) frees room. Keeps room on the disk for the WAL and logs.
    max_size: ByteSize = ByteSize(0)


class BusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which bus to use (``[bus]``)."""

    kind: Literal["embedded", "kafka"] = "embedded"  # embedded: one process, SQLite file
    publish_timeout: Duration = Duration(10)  # past this ingest answers 451 4.3.0


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The HTTP port serving /metrics, /healthz and /readyz (``[http]``)."""

    host: str = "127.0.0.1"  # address to bind ("0.0.0.0" in a pod)
    port: Port = 9464


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Logging (``[log]``)."""

    level: Literal["debug", "info", "warning", "error"] = "info"  # lowest level logged
    format: Literal["json", "text"] = "json"  # one JSON object per line, or plain text lines
    #: A warning or error repeated (same logger, message and level: a broker outage) is
    #: written this many times, then once per repeat_interval with a "suppressed" count; 0: off
    repeat_burst: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 10
    repeat_interval: Duration = Duration(60)  # after repeat_burst, one such line per interval

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        if not 0.1 <= self.repeat_interval <= 86400:
            raise ValueError(
                f"repeat_interval must be between 0.1s and 86400s, got {self.repeat_interval:g}s"
            )


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What ``/metrics`` exposes beyond the fixed series (``[metrics]``)."""

    #: Count messages per tenant (postline_tenant_messages_total). Costs one series per tenant
    #: per stage and result: keep it off above a few hundred tenants
    tenant_label: bool = False


class RuntimeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Process behaviour shared by every stage (``[runtime]``)."""

    instance: str = ""  # stable id of this process (pod name); default: hostname
    drain_timeout: Duration = Duration(30)  # SIGTERM: how long in-flight work may take
    data_dir: Path = Path("data")  # where a process keeps local state
    #: A background task that dies: "exit" drains and exits non-zero (the orchestrator
    #: restarts the process); "unready" keeps running with /readyz at 503.
    task_failure: Literal["exit", "unready"] = "exit"
    #: ``postline run`` only: stages that run in a process of their own each, started and
    #: stopped by the run, so that one run uses more than one core. The other stages share
    #: the run's own process and its HTTP port, which also serves the stage processes'
    #: metrics and readiness. ``[]``: every stage in one process. A stage command
    #: (``postline signer``) ignores it.
    separate_processes: Annotated[tuple[str, ...], msgspec.Meta(max_length=16)] = (
        "ingest",
        "signer",
        "deliverer",
    )


class SecretsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Installation-wide secrets (``[secrets]``): the KEK sealing tenants' DKIM keys.

    The key-encryption key seals the private keys of tenants' sending domains on
    ``postline.tenants`` (``shared.sealing``); the keyed-hash key keeps erased addresses
    suppressed without keeping them (``shared.addresshash``)."""

    #: File holding the KEK (64 hex digits = 256 bits; a mounted Secret in Kubernetes).
    #: Unset: ``<runtime.data_dir>/secrets/kek.key``. ``postline run`` creates it when
    #: missing; a stage started on its own refuses to start without it once tenant keys exist.
    kek_file: Path | None = None
    #: Earlier KEK files, still tried when opening keys sealed before a KEK rotation;
    #: new keys are always sealed with ``kek_file``.
    kek_previous_files: Annotated[tuple[Path, ...], msgspec.Meta(max_length=8)] = ()

    #: File holding the key of the keyed hash (HMAC-SHA256) that replaces an erased address
    #: in its suppression entries (``postline gdpr erase``; 64 hex digits). Ingest and the
    #: signer read it to match those entries. Unset: ``<runtime.data_dir>/secrets/gdpr.key``;
    #: ``postline run`` creates it when missing. Never rotate it: entries hashed with an old
    #: key stop matching, and the erased addresses would be mailed again.
    gdpr_hash_key_file: Path | None = None

    def kek_path(self, runtime: RuntimeConfig) -> Path:
        """The current KEK file, with its default resolved against ``runtime.data_dir``."""
        return self.kek_file if self.kek_file is not None else runtime.data_dir / "secrets/kek.key"

    def gdpr_hash_key_path(self, runtime: RuntimeConfig) -> Path:
        """The keyed-hash key file, with its default resolved against ``runtime.data_dir``."""
        if self.gdpr_hash_key_file is not None:
            return self.gdpr_hash_key_file
        return runtime.data_dir / "secrets/gdpr.key"


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where rate limits and quotas count, and what a check does when Redis fails (``[limits]``).

    The limits themselves (per tenant) come from the tenant table, not from here."""

    #: "local": counters in this process (the embedded bus, ``make run``); with N replicas a
    #: limit is enforced N times over. "redis": counters in Redis, one limit for the cluster.
    backend: Literal["local", "redis"] = "local"
    #: Redis to keep the counters in (``redis://host:6379/0``; ``rediss://`` for TLS). Put
    #: no password here: use password_file.
    redis_url: str = "redis://127.0.0.1:6379/0"
    password_file: Path | None = None  # file holding the Redis password (first line)
    #: Prefix of every limiter key in Redis, so several installations can share one Redis.
    key_prefix: Annotated[str, msgspec.Meta(max_length=64)] = "postline:limits:"
    #: One check's deadline in Redis (1ms to 10s); past it, on_redis_failure decides.
    timeout: Duration = Duration(0.05)
    #: Redis unreachable, failing or slower than timeout: "open" decides the check in this
    #: process instead (counted in postline_limits_redis_failures_total, logged); "closed"
    #: refuses it (ingest answers 451 4.3.0 and the client retries).
    on_redis_failure: Literal["open", "closed"] = "open"
    #: Fail-open: the share of each limit one process allows on its own while Redis is down;
    #: 1/replicas keeps the cluster near its limit, 1.0 lets each replica allow all of it.
    fallback_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        if not 0.001 <= self.timeout <= 10:
            raise ValueError(f"timeout must be between 1ms and 10s, got {self.timeout:g}s")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"redis_url must start with redis://, rediss:// or unix://, got {self.redis_url!r}"
            )


class CoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The sections every process reads. Stage sections are kept raw and decoded by stages."""

    bus: BusConfig = BusConfig()
    kafka: KafkaConfig = KafkaConfig()
    embedded: EmbeddedConfig = EmbeddedConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    metrics: MetricsConfig = MetricsConfig()
    limits: LimitsConfig = LimitsConfig()
    secrets: SecretsConfig = SecretsConfig()
    pools: PoolsConfig = PoolsConfig()
    ingest: dict[str, Any] = {}
    signer: dict[str, Any] = {}
    deliverer: dict[str, Any] = {}
    bouncer: dict[str, Any] = {}
    reputation: dict[str, Any] = {}
    webhooks: dict[str, Any] = {}
    store: dict[str, Any] = {}


class Config:
    """A loaded configuration: the shared sections plus raw stage sections."""

    def __init__(self, core: CoreConfig, source: str, env_keys: Mapping[str, str]) -> None:
        self.core = core
        self.source = source
        self._env_keys = env_keys  # dotted key -> the env variable that set it

    def section(self, name: str, typ: type[T]) -> T:
        """Decode a stage section (``ingest``, ``signer``, ...) strictly into ``typ``."""
        raw = getattr(self.core, name)
        return convert(raw, typ, self._source_for(name), prefix=name, env_keys=self._env_keys)

    def _source_for(self, prefix: str) -> str:
        for key, var in self._env_keys.items():
            if key.startswith(prefix + "."):
                return f"{self.source} (with {var})"
        return self.source


def convert(
    raw: Any, typ: type[T], source: str, prefix: str = "", env_keys: Mapping[str, str] | None = None
) -> T:
    """Decode plain data into ``typ``; errors name ``source`` and the full key path."""
    try:
        return msgspec.convert(raw, typ, dec_hook=_dec_hook, str_keys=True)
    except msgspec.ValidationError as exc:
        key, problem = _split_validation_error(str(exc))
        full = ".".join(p for p in (prefix, key) if p)
        where = source
        if env_keys and full in env_keys:
            where = f"environment variable {env_keys[full]}"
        raise ConfigError(where, full, problem) from exc


def _split_validation_error(message: str) -> tuple[str, str]:
    # msgspec: "Expected `int` >= 1, got `0` - at `$.listeners[0].port`"
    # or "Object contains unknown field `x` - at `$.bus`"
    problem, sep, path = message.rpartition(" - at `")
    if not sep:  # msgspec omits the path for the top level: "... unknown field `x`"
        problem, path = message, "$`"
    path = path.rstrip("`").removeprefix("$").removeprefix(".")
    unknown = re.match(r"Object contains unknown field `(.+)`", problem)
    if unknown:
        field = unknown.group(1)
        return ".".join(p for p in (path, field) if p), "unknown key (not a Postline setting)"
    problem = problem.replace("`", "'")
    problem = problem[:1].lower() + problem[1:]
    return path, problem


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override and validate a config file (``None``: defaults plus environment)."""
    environ = os.environ if environ is None else environ
    source = str(path) if path else "(defaults)"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(source, "", "file not found") from exc
        except OSError as exc:
            raise ConfigError(source, "", f"cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
    env_keys = _apply_environment(data, environ)
    core = convert(data, CoreConfig, source, env_keys=env_keys)
    return Config(core, source, env_keys)


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    env_keys: dict[str, str] = {}
    for var, value in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {var}", ".".join(parts), "not a table")
            node = child
        node[parts[-1]] = _env_value(value)
        env_keys[".".join(parts)] = var
    return env_keys


def _env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def to_builtins(obj: Any) -> Any:
    """Config structs as plain data (for ``postline config show`` and tests)."""
    return msgspec.to_builtins(obj, enc_hook=_enc_hook)
