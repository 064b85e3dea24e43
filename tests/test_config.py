from __future__ import annotations

from pathlib import Path

import pytest

from wattwise.config import Settings
from wattwise.errors import ConfigError


def test_precedence_defaults_file_env_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('region = "FR"\npue = 1.3\ninterval_s = 2.0\n')
    monkeypatch.setenv("WATTWISE_CONFIG", str(cfg))
    s = Settings.load()
    assert (s.region, s.pue, s.interval_s) == ("FR", 1.3, 2.0)
    monkeypatch.setenv("WATTWISE_PUE", "1.5")
    assert Settings.load().pue == 1.5
    assert Settings.load({"pue": 1.1}).pue == 1.1
    assert Settings.load({"pue": None}).pue == 1.5  # None means "not given"


def test_home_and_db_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WATTWISE_HOME", str(tmp_path / "h"))
    s = Settings.load()
    assert s.db_url == f"sqlite:///{tmp_path / 'h' / 'wattwise.db'}"
    monkeypatch.setenv("WATTWISE_DB", "sqlite:///other.db")
    assert Settings.load().db_url == "sqlite:///other.db"


def test_config_in_home_is_read(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config.toml").write_text('[wattwise]\nattribution = "machine"\n')
    assert Settings.load().attribution == "machine"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("regoin = 'DE'", "did you mean 'region'"),
        ("pue = 'high'", "pue from .* must be float"),
        ("pue = 0.8", "pue must be between 1 and 5"),
        ("interval_s = 0", "interval_s must be between"),
        ("attribution = 'mine'", "attribution must be one of"),
        ("epochs = 2.5", "epochs from .* must be int"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    monkeypatch.setenv("WATTWISE_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=message) as info:
        Settings.load()
    assert "\n" not in str(info.value)


def test_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_REGOIN", "DE")
    with pytest.raises(ConfigError, match="did you mean WATTWISE_REGION"):
        Settings.load()
    monkeypatch.delenv("WATTWISE_REGOIN")
    monkeypatch.setenv("WATTWISE_GPU", "maybe")
    with pytest.raises(ConfigError, match="gpu from environment variable WATTWISE_GPU"):
        Settings.load()
    monkeypatch.setenv("WATTWISE_GPU", "off")
    monkeypatch.setenv("WATTWISE_GPU_INDICES", "0, 2")
    s = Settings.load()
    assert s.gpu is False and s.gpu_indices == (0, 2)


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WATTWISE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load()


def test_unknown_override() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        Settings.load({"colour": "green"})


def test_replace_checks_names_and_types() -> None:
    s = Settings()
    assert s.replace(pue="1.2").pue == 1.2
    with pytest.raises(ConfigError, match="unknown setting 'regoin'"):
        s.replace(regoin="DE")
    with pytest.raises(ConfigError, match="pue must be between"):
        s.replace(pue=0.2)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"wattwise = 3\n", "must be a table"), (b"region = '\xff\xfe'\n", "not UTF-8")],
)
def test_odd_config_files_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(content)
    monkeypatch.setenv("WATTWISE_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=message):
        Settings.load()
