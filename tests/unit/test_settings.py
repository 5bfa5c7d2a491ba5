"""Settings: flags > environment > config file > defaults, masked secrets, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from visionserve.cli.main import main
from visionserve.cli.serve import FILE_ONLY
from visionserve.errors import ConfigError
from visionserve.settings import LogLevel, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VISIONSERVE_* variable of the outer environment may leak into these tests."""
    for name in list(os.environ):
        if name.startswith("VISIONSERVE_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "visionserve.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = Settings.load()
    assert (settings.host, settings.port, settings.models, settings.api_keys) == ("127.0.0.1", 8000, None, ())
    assert settings.log_level is LogLevel.INFO
    assert settings.cores >= 1


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, "port: 9001\nmax_body_bytes: 5000\nhost: 0.0.0.0\ndebug: true\n")
    monkeypatch.setenv("VISIONSERVE_CONFIG", str(config))
    monkeypatch.setenv("VISIONSERVE_PORT", "9002")
    monkeypatch.setenv("VISIONSERVE_MAX_BODY_BYTES", "6000")
    settings = Settings.load(port=9003, instances=None)
    assert settings.port == 9003  # flag
    assert settings.max_body_bytes == 6000  # environment over file
    assert settings.host == "0.0.0.0"  # file over default
    assert settings.debug is True
    assert settings.instances is None  # a flag left out (None) does not override anything


def test_config_file_from_a_flag_accepts_dashed_names(tmp_path: Path) -> None:
    config = write_config(tmp_path, "max-image-pixels: 1234\nlog-level: debug\n")
    settings = Settings.load(config=config)
    assert settings.max_image_pixels == 1234
    assert settings.log_level is LogLevel.DEBUG


def test_api_keys_are_comma_separated_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONSERVE_API_KEYS", " first-key, second-key ,")
    settings = Settings.load()
    assert [key.get_secret_value() for key in settings.api_keys] == ["first-key", "second-key"]
    assert "first-key" not in repr(settings)
    assert "first-key" not in str(settings)
    assert "**********" in repr(settings)


def test_api_keys_as_a_list_in_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "api_keys: [alpha, beta]\n")
    assert [k.get_secret_value() for k in Settings.load(config=config).api_keys] == ["alpha", "beta"]


def test_url_hosts_from_a_yaml_list_are_normalised_like_a_comma_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, "url_image_hosts: [' Images.Example.COM ', '', CDN.example.org]\n")
    from_file = Settings.load(config=config, jobs_url_hosts=("  Bucket.Example.NET", " "))
    assert from_file.url_image_hosts == ("images.example.com", "cdn.example.org")
    assert from_file.jobs_url_hosts == ("bucket.example.net",)
    monkeypatch.setenv("VISIONSERVE_JOBS_URL_HOSTS", " Bucket.Example.NET , ,")
    assert Settings.load().jobs_url_hosts == ("bucket.example.net",)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"port": 0}, "port"), ({"max_body_bytes": 10}, "max_body_bytes"), ({"instances": 0}, "instances")],
)
def test_values_out_of_range_name_the_field(overrides: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid settings: {field}"):
        Settings.load(**overrides)


def test_a_bad_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONSERVE_PORT", "eighty")
    with pytest.raises(ConfigError, match="port"):
        Settings.load()


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port: 9000\nmax_bodybytes: 1\n")
    with pytest.raises(ConfigError, match="unknown settings max_bodybytes"):
        Settings.load(config=config)


@pytest.mark.parametrize(("text", "message"), [("[1, 2]\n", "must be a mapping"), ("port: [\n", "not valid YAML")])
def test_a_malformed_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(config=write_config(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        Settings.load(config=tmp_path / "absent.yaml")


def test_serve_help_lists_every_setting_with_its_environment_variable() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in Settings.model_fields.keys() - FILE_ONLY:
        flag = "--" + name.replace("_", "-")
        assert flag in result.output, flag
        assert f"VISIONSERVE_{name.upper()}" in result.output, name


def test_serve_reports_invalid_settings_as_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 1
    assert "invalid settings: port" in result.output
