"""The examples/ exports end to end: a Shopify orders CSV and a HubSpot contacts CSV, synced and scored.

Each project is copied to a temporary directory and synced from another working directory (as
cron would), through its own kpihub.toml. The expected values are worked out by hand in the
comments from the rows of the export files.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from kpihub import Pipeline, load_project
from kpihub.testing import KPIEngine, Registry

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MARCH, APRIL, MAY = dt.date(2024, 3, 1), dt.date(2024, 4, 1), dt.date(2024, 5, 1)


def scores(example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kpis: list[str]) -> dict[str, dict]:
    import kpihub_files

    project_dir = tmp_path / example
    shutil.copytree(EXAMPLES / example, project_dir)
    monkeypatch.chdir(tmp_path)  # not the project directory: paths resolve from kpihub.toml
    project = load_project(project_dir / "kpihub.toml")
    registry = Registry(load_entrypoints=False)
    registry.register_plugin(kpihub_files, "files", distribution="kpihub-files")
    pipeline = Pipeline(project, registry=registry)
    result = pipeline.sync()
    assert result.ok, [r.error for r in result.streams]
    catalog = registry.kpis
    with pipeline.open_destination(read_only=True) as session:
        engine = KPIEngine.for_destination(
            session, timezone=project.settings.timezone, currency=project.settings.currency, catalog=catalog
        )
        return {k: engine.series(catalog[k], grain="month", start=MARCH, end=MAY).values() for k in kpis}


def test_shopify_orders_export_scores_sales_orders_and_aov(tmp_path, monkeypatch):
    got = scores("shopify-orders", tmp_path, monkeypatch, ["sales", "orders", "aov", "paying_customers", "arpu"])
    # March (Stockholm): #1001 paid 499, #1002 paid 1250, #1003 partially refunded 800 - 200,
    # #1004 pending 300 (nets 0, not a paid order). #1005 at 2024-04-01 00:30 +0200 is April
    # in Stockholm though 2024-03-31 22:30 UTC. April: #1005 650, #1006 refunded 400 - 400, #1007 voided.
    assert got["sales"] == {MARCH: Decimal("2349"), APRIL: Decimal("650")}
    assert got["orders"] == {MARCH: 3, APRIL: 2}
    assert got["aov"] == {MARCH: pytest.approx((499 + 1250 + 800) / 3), APRIL: pytest.approx((650 + 400) / 2)}
    assert got["paying_customers"] == {MARCH: 2, APRIL: 2}  # anna, bo; bo, dana
    assert got["arpu"] == {MARCH: pytest.approx(2349 / 2), APRIL: pytest.approx(650 / 2)}


def test_hubspot_contacts_export_scores_leads_mqls_and_new_customers(tmp_path, monkeypatch):
    got = scores("hubspot-contacts", tmp_path, monkeypatch, ["leads", "mqls", "sqls", "new_customers"])
    # Leads in March: 101, 102, 103 by their lead date, 104 by its customer date (it skipped the
    # earlier stages). April: 105 (2024-04-01 00:15 Stockholm = March 31 UTC) and 106; 108 was a lead in February.
    assert got["leads"] == {MARCH: 4, APRIL: 2}
    assert got["mqls"] == {MARCH: 3, APRIL: 2}  # 102, 103, 104; 106, 108
    assert got["sqls"] == {MARCH: 2, APRIL: 1}  # 103, 104; 106
    assert got["new_customers"] == {MARCH: 1, APRIL: 1}  # 104 on 03-25; 103 on 04-02
