"""``kpihub doctor`` against real bad inputs: each finding is one exact line, and errors fail the run.

Plugins are real distributions: a ``.dist-info`` with an entry point written to a directory on
``sys.path``, found by ``importlib.metadata`` and imported for real. Only those (and the installed
first-party plugins a test names) are seen, so the output does not depend on what else is installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import socket
import sys
from pathlib import Path

import pluggy
import pytest
from click.testing import CliRunner

from kpihub.cli import cli
from kpihub.plugins import Registry

REAL_DISTRIBUTIONS = importlib.metadata.distributions


class Site:
    """A directory on ``sys.path`` holding tiny distributions, as pip would lay them out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.installed: set[str] = set()  # installed first-party distributions to see as well
        self.modules: list[str] = []

    def add(self, dist: str, entry_point: str, module: str, source: str | None = None) -> None:
        if source is not None:
            (self.root / f"{module}.py").write_text(source)
            self.modules.append(module)
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[kpihub]\n{entry_point} = {module}\n")

    def distributions(self) -> list[importlib.metadata.Distribution]:
        ours = list(REAL_DISTRIBUTIONS(path=[str(self.root)]))
        return ours + [d for d in REAL_DISTRIBUTIONS() if d.metadata["Name"] in self.installed]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "site"
    root.mkdir()
    s = Site(root)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(importlib.metadata, "distributions", s.distributions)
    monkeypatch.chdir(tmp_path)
    yield s
    for module in s.modules:
        sys.modules.pop(module, None)


def doctor(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["doctor", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.splitlines()


def project(tmp_path: Path, text: str) -> None:
    (tmp_path / "kpihub.toml").write_text(f'[project]\ndestination = "duckdb:///{tmp_path}/data.duckdb"\n{text}')


NO_PROJECT = (
    "warn  project: no kpihub.toml here or in a parent directory (run `kpihub init`): only the plugins were checked"
)


def test_a_plugin_whose_entry_point_fails_to_import(site):
    site.add("kpihub-broken", "broken", "kpihub_broken", "import thinglib_not_installed\n")
    site.add("kpihub-toy", "toy", "tests.plugins.toy")
    code, lines = doctor()
    assert lines == [
        "error plugin 'broken': error loading kpihub plugin 'broken' from kpihub-broken 1.0: "
        "ModuleNotFoundError: No module named 'thinglib_not_installed'",
        "ok    plugin 'toy': kpihub-toy 1.0: registers source toy",
        NO_PROJECT,
    ]
    assert code == 1


def test_the_same_findings_as_json(site):
    site.add("kpihub-broken", "broken", "kpihub_broken", "raise RuntimeError('needs\\nthinglib>=2')\n")
    result = CliRunner().invoke(cli, ["doctor", "--format", "json"])
    assert json.loads(result.output)[0] == {
        "level": "error",
        "subject": "plugin 'broken'",
        "message": "error loading kpihub plugin 'broken' from kpihub-broken 1.0: RuntimeError: needs thinglib>=2",
    }
    assert result.exit_code == 1


def test_a_hookimpl_with_a_wrong_argument_name(site):
    site.add(
        "kpihub-wrongarg",
        "wrongarg",
        "kpihub_wrongarg",
        "import kpihub\n@kpihub.hookimpl\ndef kpihub_register_sources(registry):\n    pass\n",
    )
    code, lines = doctor()
    assert lines[0] == (
        "error plugin 'wrongarg': hook kpihub_register_sources(registry) takes 'registry', "
        "which the spec kpihub_register_sources(register) does not have"
    )
    assert code == 1


def test_a_misspelled_hook_is_reported_and_the_other_plugins_still_load(site):
    site.add(
        "kpihub-typo",
        "typo",
        "kpihub_typo",
        "import kpihub\n@kpihub.hookimpl\ndef kpihub_register_source(register):\n    pass\n",
    )
    site.add("kpihub-toy", "toy", "tests.plugins.toy")
    with pytest.raises(pluggy.PluginValidationError):  # what every other command meets
        Registry()
    code, lines = doctor()
    assert lines[:2] == [
        "error plugin 'typo': kpihub_register_source is not a kpihub hook (did you mean kpihub_register_sources?)",
        "ok    plugin 'toy': kpihub-toy 1.0: registers source toy",
    ]
    assert code == 1


def test_a_source_with_a_missing_secret(site, tmp_path, monkeypatch):
    site.add("kpihub-toy", "toy", "tests.plugins.toy")
    project(tmp_path, '[sources.toy]\nbase_url = "http://127.0.0.1:9"\n')
    code, lines = doctor("--offline")
    assert lines[1] == (
        "error source 'toy': setting 'token' is required (set it in [sources.toy] in kpihub.toml or KPIHUB_TOY_TOKEN)"
    )
    assert code == 1
    monkeypatch.setenv("KPIHUB_TOY_TOKEN", "toy-secret-value-77")
    result = CliRunner().invoke(cli, ["doctor", "--offline"])
    assert "ok    source 'toy': toy settings valid" in result.output.splitlines()
    assert "toy-secret-value-77" not in result.output


def test_an_old_linkedin_version(site, tmp_path):
    site.installed.add("kpihub-linkedin-ads")
    project(
        tmp_path,
        '[sources.linkedin_ads]\naccess_token = "AQVtoken"\naccount_ids = ["507123456"]\napi_version = "202306"\n',
    )
    code, lines = doctor("--offline")
    assert lines[2] == (
        "error source 'linkedin_ads': api_version 202306 was sunset about 2024-06-15 (LinkedIn supports a version "
        "about a year, learn.microsoft.com/en-us/linkedin/marketing/versioning): set api_version to one released "
        "in the last 12 months"
    )
    assert code == 1


def test_linkedin_says_whether_it_accepts_the_version(site, tmp_path):
    from kpihub_linkedin_ads.fake import FakeLinkedInAds

    site.installed.add("kpihub-linkedin-ads")
    for version, expected in (
        (
            "202406",
            "error source 'linkedin_ads': LinkedIn refuses api_version 202306 (426): linkedin_ads/doctor: GET "
            "{url}/rest/adAccounts/507123456 failed after 1 attempt: HTTP 426: Requested version 202001 is not active",
        ),
        (
            "202306",
            "warn  source 'linkedin_ads': api_version 202306 is past or near its sunset (about 2024-06-15) but "
            "LinkedIn still accepts it: move to a newer version",
        ),
    ):
        with FakeLinkedInAds(version=version) as server:
            project(
                tmp_path,
                f'[sources.linkedin_ads]\nbase_url = "{server.url}"\naccess_token = "{server.token}"\n'
                'account_ids = ["507123456"]\napi_version = "202306"\n',
            )
            _code, lines = doctor()
            assert lines[2] == expected.format(url=server.url)


def test_stripe_versions_offline_and_online(site, tmp_path):
    from kpihub_stripe.fake import FakeStripe

    site.installed.add("kpihub-stripe")
    with FakeStripe(customers=3) as server:
        base = f'[sources.stripe]\nbase_url = "{server.url}"\napi_key = "{server.api_key}"\n'
        project(tmp_path, base)
        code, lines = doctor()
        assert lines[2] == (
            "ok    source 'stripe': stripe_version 2025-03-31.basil is the release the streams are written for; "
            "Stripe accepts it"
        )
        project(tmp_path, base + 'stripe_version = "2025-03-31.acacia"\n')
        code, lines = doctor()
    assert lines[2] == (
        "error source 'stripe': stripe_version 2025-03-31.acacia: a version of 2025-03-31 belongs to basil, not acacia"
    )
    assert code == 1


def test_an_unreachable_destination(site, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "kpihub.toml").write_text(
        f'[project]\ndestination = "postgresql://kpihub:pw-77-secret@127.0.0.1:{port}/kpihub"\n'
        '[sources.toy]\ntoken = "t"\n'
    )
    site.add("kpihub-toy", "toy", "tests.plugins.toy")
    code, lines = doctor("--offline")
    assert lines[-1] == (
        f"error destination: cannot connect to postgresql://kpihub:***@127.0.0.1:{port}/kpihub: IO: [libpq] Failed "
        f'to connect: connection to server at "127.0.0.1", port {port} failed: Connection refused'
    )
    assert code == 1


def test_a_healthy_project_is_all_ok_and_exits_0(site, tmp_path, toy_server):
    from kpihub.sync import Pipeline

    site.add("kpihub-toy", "toy", "tests.plugins.toy")
    project(tmp_path, f'[sources.toy]\nbase_url = "{toy_server.url}"\ntoken = "{toy_server.token}"\n')
    code, lines = doctor()
    assert (
        lines[-1] == f"warn  destination: DuckDB file '{tmp_path}/data.duckdb' does not exist (run `kpihub sync` first)"
    )
    assert code == 0  # a warning does not fail
    Pipeline(tmp_path / "kpihub.toml").sync().raise_for_errors()
    code, lines = doctor()
    assert lines == [
        "ok    plugin 'toy': kpihub-toy 1.0: registers source toy",
        "ok    source 'toy': toy settings valid",
        f"ok    destination: duckdb:///{tmp_path}/data.duckdb opens read-only",
    ]
    assert code == 0


def test_hubspot_token_scopes(site, tmp_path):
    from kpihub_hubspot.fake import FakeHubSpot

    site.installed.add("kpihub-hubspot")
    with FakeHubSpot(contacts=5) as server:
        project(tmp_path, f'[sources.hubspot]\nbase_url = "{server.url}"\ntoken = "{server.token}"\n')
        code, lines = doctor()
        assert lines[2] == "ok    source 'hubspot': the token holds the scopes of every stream (portal 1234567)"
        assert code == 0
        server.scopes.remove("crm.objects.deals.read")
        result = CliRunner().invoke(cli, ["doctor"])
        assert server.token not in result.output
        assert result.output.splitlines()[2] == (
            "error source 'hubspot': the private app's token lacks crm.objects.deals.read (for deals, deal_pipelines): "
            "add the scope to the app in HubSpot"
        )
        assert result.exit_code == 1
        assert doctor("--offline") == (0, lines[:2] + lines[3:])  # no request offline: no scope finding
