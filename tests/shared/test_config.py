"""Strict config loading: every error names the file (or variable) and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from shared.config import ByteSize, Config, Duration, load_config
from shared.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(text)
    return path


def load_error(path: Path | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return caught.value


def test_defaults_without_a_file() -> None:
    config = load_config(None, environ={})
    assert config.source == "(defaults)"
    assert config.core.bus.kind == "embedded"
    assert config.core.runtime.drain_timeout == 30.0


def test_a_good_file_is_decoded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[bus]\nkind = "kafka"\npublish_timeout = "2m"\n[http]\nport = 0\n'
        '[kafka]\nbootstrap = "k1:9092,k2:9092"\n[embedded]\npath = "/var/lib/postline/bus.db"\n',
    )
    config = load_config(path, environ={})
    assert config.core.bus.kind == "kafka"
    assert config.core.bus.publish_timeout == 120.0
    assert config.core.http.port == 0
    assert config.core.embedded.path == Path("/var/lib/postline/bus.db")


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nport = 9000\nhots = "0.0.0.0"\n')
    error = load_error(path)
    assert (error.source, error.key) == (str(path), "http.hots")
    assert "unknown key" in str(error)
    assert str(path) in str(error) and "http.hots" in str(error)


def test_unknown_section_names_it(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "[telemetry]\nport = 1\n"))
    assert error.key == "telemetry"


def test_value_out_of_bounds_names_key(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "[http]\nport = 70000\n"))
    assert error.key == "http.port"
    assert "65535" in error.problem


def test_nested_bound(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "[embedded]\npartitions = 0\n"))
    assert error.key == "embedded.partitions"


def test_bad_duration_names_key(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, '[runtime]\ndrain_timeout = "soon"\n'))
    assert (error.source, error.key) == (str(tmp_path / "postline.toml"), "runtime.drain_timeout")
    assert "duration" in error.problem


def test_wrong_type_names_key(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, '[log]\nlevel = "loud"\n'))
    assert error.key == "log.level"


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[http\nport = 1\n")
    error = load_error(path)
    assert error.source == str(path)
    assert "not valid TOML" in error.problem


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    error = load_error(path)
    assert error.source == str(path) and "not found" in error.problem


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[kafka]\nbootstrap = "file:9092"\n[http]\nport = 9000\n')
    environ = {
        "POSTLINE__KAFKA__BOOTSTRAP": "env:9092",
        "POSTLINE__HTTP__PORT": "9100",
        "POSTLINE__RUNTIME__DRAIN_TIMEOUT": "45s",
        "UNRELATED": "x",
    }
    config = load_config(path, environ=environ)
    assert config.core.kafka.bootstrap == "env:9092"
    assert config.core.http.port == 9100
    assert config.core.runtime.drain_timeout == 45.0


def test_environment_error_names_the_variable(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, ""), {"POSTLINE__HTTP__PORT": "-5"})
    assert error.source == "environment variable POSTLINE__HTTP__PORT"
    assert error.key == "http.port"


def test_environment_unknown_key_names_the_key(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, ""), {"POSTLINE__HTTP__PROT": "1"})
    assert error.key == "http.prot"


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A stage section as a stage would declare it."""

    timeout: Duration = Duration(30)
    max_size: ByteSize = ByteSize(1024)
    workers: Annotated[int, msgspec.Meta(ge=1)] = 1


def stage_config(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=environ or {})


def test_stage_section_is_decoded_strictly(tmp_path: Path) -> None:
    config = stage_config(tmp_path, '[signer]\ntimeout = "2m"\nmax_size = "25MiB"\n')
    section = config.section("signer", Section)
    assert section.timeout == 120.0
    assert section.max_size == 25 * 1024 * 1024


def test_stage_section_error_names_section_key(tmp_path: Path) -> None:
    config = stage_config(tmp_path, "[signer]\nworkers = 0\n")
    with pytest.raises(ConfigError) as caught:
        config.section("signer", Section)
    assert caught.value.key == "signer.workers"
    assert caught.value.source == str(tmp_path / "postline.toml")


def test_stage_section_env_error_names_the_variable(tmp_path: Path) -> None:
    config = stage_config(tmp_path, "", {"POSTLINE__SIGNER__MAX_SIZE": "lots"})
    with pytest.raises(ConfigError) as caught:
        config.section("signer", Section)
    assert caught.value.source == "environment variable POSTLINE__SIGNER__MAX_SIZE"
    assert caught.value.key == "signer.max_size"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("250ms", 0.25), (12, 12.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 minutes", "-1s", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(bad)
