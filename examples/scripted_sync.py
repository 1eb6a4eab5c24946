"""A scripted sync from Python: what a cron job or an Airflow task runs.

Runs offline against the fake HubSpot that ships with kpihub-hubspot, so it
works without credentials:

    python examples/scripted_sync.py

Against the real API, drop the fake and keep a kpihub.toml with
[sources.hubspot] and KPIHUB_HUBSPOT_TOKEN in the environment:

    result = kpihub.sync("kpihub.toml")        # raises SyncError on failure
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from kpihub_hubspot.fake import FakeHubSpot

import kpihub
from kpihub.config import Project, ProjectSettings
from kpihub.kpis.engine import KPIEngine
from kpihub.kpis.periods import Period
from kpihub.kpis.scorecard import build_scorecard
from kpihub.plugins import get_registry


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kpihub-example-"))
    with FakeHubSpot(contacts=5_000) as server:
        project = Project(
            path=workdir / "kpihub.toml",
            settings=ProjectSettings(destination="parquet:///data", timezone="Europe/Oslo"),
            sources={"hubspot": {"base_url": server.url, "token": server.token, "requests_per_second": None}},
        )
        pipeline = kpihub.Pipeline(project)
        result = pipeline.sync()
    for stream in result.streams:
        print(f"{stream.key:<24} {stream.status:<7} {stream.records:>7} records  cursor={stream.cursor}")
    if not result.ok:
        return 1  # cron/Airflow see the failure; committed chunks stay committed

    with pipeline.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(session, timezone="Europe/Oslo")
        registry = get_registry()
        series = engine.series(
            registry.kpi("win_rate"), grain="quarter", start=dt.date(2025, 1, 1), end=dt.date(2026, 7, 1)
        )
        print("win rate by quarter:", {str(k): None if v is None else round(v, 3) for k, v in series.values().items()})
        rows = build_scorecard(engine, registry.kpis, period=Period.parse("2026-Q2"))
        for row in rows:
            print(f"{row.title:<28} {row.actual}")
    print(f"data in {workdir / 'data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
