"""Settings: kpihub.toml plus KPIHUB_* variables; one-line errors; secrets stay secret."""

from __future__ import annotations

import pytest

from kpihub.config import build_source_settings, load_project
from kpihub.errors import ConfigError
from kpihub.secrets import redact
from tests.plugins.toy import ToySettings

SECRET = "toy-canary-secret-7781"


def write(tmp_path, text: str):
    f = tmp_path / "kpihub.toml"
    f.write_text(text)
    return f


def test_project_file_and_environment(tmp_path, monkeypatch):
    f = write(
        tmp_path,
        '[project]\ndestination = "parquet:///out"\ntimezone = "Europe/Oslo"\n'
        '[sources.toy]\nbase_url = "http://127.0.0.1:1"\npage_size = 10\n',
    )
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", SECRET)
    monkeypatch.setenv("KPIHUB_TOY_PAGE_SIZE", "25")  # the environment beats the file
    monkeypatch.setenv("KPIHUB_TIMEZONE", "UTC")
    project = load_project(f)
    assert project.settings.destination == "parquet:///out"
    assert project.settings.timezone == "UTC"
    settings = project.source_settings("toy", ToySettings)
    assert settings.page_size == 25 and settings.token.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert redact(f"failed with {SECRET}") == "failed with ***"


def test_source_type_defaults_to_id_and_can_be_set(tmp_path):
    project = load_project(write(tmp_path, '[sources.toy_eu]\ntype = "toy"\n[sources.toy]\n'))
    assert project.source_type("toy_eu") == "toy" and project.source_type("toy") == "toy"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "source 'toy': setting 'token' is required (set it in [sources.toy] in kpihub.toml or KPIHUB_TOY_TOKEN)"),
        ({"token": "x", "page_size": "many"}, "source 'toy': setting 'page_size' input should be a valid integer"),
        ({"token": "x", "pagesize": 5}, "source 'toy': setting 'pagesize' is not a known setting"),
        ({"token": "x", "max_attempts": 0}, "source 'toy': setting 'max_attempts' input should be greater than"),
    ],
)
def test_validation_errors_name_source_and_field(values, message):
    with pytest.raises(ConfigError) as info:
        build_source_settings(
            "toy", ToySettings, {"base_url": "http://x", **values}, where="[sources.toy] in kpihub.toml"
        )
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_bad_secret_value_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        build_source_settings("toy", ToySettings, {"base_url": "http://x", "token": ["not", SECRET]})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project\n", "not valid TOML"),
        ("[projects]\n", "unknown table [projects]"),
        ('[project]\ndestinaton = "x"\n', "[project] 'destinaton' is not a known setting"),
        ('[project]\ntimezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ("[sources]\ntoy = 3\n", "[sources.toy] must be a table"),
    ],
)
def test_malformed_project_files(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_missing_project_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_project("/nonexistent/kpihub.toml")
