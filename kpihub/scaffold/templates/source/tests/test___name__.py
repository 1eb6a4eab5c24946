"""$title against its fake: kpihub's conformance suite, and tests of your own beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kpihub.testing import Normalizer
from kpihub.testing.conformance import SourceConformance
from $package import ${cls}Settings, ${cls}Source
from $package.fake import Fake${cls}
from $package.source import TICKETS


class Test${cls}Conformance(SourceConformance[Fake${cls}]):
    """Every test of kpihub.testing.conformance.SourceConformance, against Fake${cls}."""

    source = ${cls}Source()

    def make_server(self) -> Fake${cls}:
        return Fake${cls}(seed=1)

    def settings(self, server: Fake${cls}) -> dict[str, Any]:
        return {"base_url": server.url, "api_token": server.token}

    def fault_settings(self, server: Fake${cls}) -> dict[str, Any]:
        return {**self.settings(server), "page_size": 10}  # small pages: paging faults get exercised

    def change_data(self, server: Fake${cls}) -> None:
        server.touch(fraction=0.05, new=5)

    def live_changes(self, server: Fake${cls}) -> Callable[[Any], None]:
        def churn(request: Any) -> None:  # between two page requests: modify, add and delete
            server.touch(fraction=0.02, new=1)
            server.delete(1)

        return churn


def test_the_json_paths_of_the_schema_reach_every_field() -> None:
    records = list(Fake${cls}(seed=2, tickets=20).tickets.values())
    batch = Normalizer("tickets", TICKETS, primary_key=("id",)).normalize(records).batch
    assert batch.num_rows == 20
    for name in ("id", "status", "channel", "created_at", "updated_at"):  # a wrong path reads as all null
        assert batch.column(name).null_count == 0, name


def test_settings_read_the_token_from_the_environment(monkeypatch) -> None:
    from kpihub.testing import build_source_settings

    monkeypatch.setenv("KPIHUB_${NAME}_API_TOKEN", "from-env")
    settings = build_source_settings("$name", ${cls}Settings, {"base_url": "http://127.0.0.1:1"})
    assert settings.api_token.get_secret_value() == "from-env"
