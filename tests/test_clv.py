"""CLV models reproduce Fader, Hardie & Lee (2005) on the CDNOW sample, end to end from transactions.

Data: the CDNOW 1/10th sample (2,357 customers who first bought in Q1 1997,
transactions to June 1998) as shipped by the ``lifetimes`` package (test
dependency; read as files, not imported). Calibration ends on 1997-09-30
(39 weeks), time in weeks, exactly as in the papers:

* BG/NBD ("Counting Your Customers the Easy Way", Marketing Science 24(2),
  2005, Table/section 4): r = 0.243, α = 4.414, a = 0.793, b = 2.426,
  LL = −9582.4; Hardie's worked example gives E[Y(39) | x=2, tₓ=30.43,
  T=38.86] = 1.226.
* Gamma-Gamma ("RFM and CLV: Using Iso-Value Curves", JMR 42(4), 2005;
  Fader & Hardie's 2013 note): p = 6.25, q = 3.74, γ = 15.44.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest

from kpihub.errors import KPIError
from kpihub.kpis.engine import KPIEngine
from kpihub.models import fit_clv
from kpihub.models.clv import BGNBD, fit_bgnbd
from kpihub.plugins import Registry
from tests.kpi_data import load, money

CATALOG = dict(Registry(load_entrypoints=False).kpis)
CALIBRATION_END = dt.date(1997, 9, 30)


def _dataset(name: str) -> Path:
    path = Path(str(importlib.metadata.distribution("lifetimes").locate_file(f"lifetimes/datasets/{name}")))
    assert path.is_file(), f"{path} missing: install the test extra (lifetimes ships the CDNOW data)"
    return path


@pytest.fixture(scope="module")
def cdnow() -> KPIEngine:
    rows = []
    for i, line in enumerate(_dataset("CDNOW_sample.txt").read_text().splitlines()):
        _, customer, yyyymmdd, _cds, value = line.split()
        at = dt.datetime.strptime(yyyymmdd, "%Y%m%d").replace(hour=12, tzinfo=dt.timezone.utc)
        rows.append(
            {
                "order_id": str(i),
                "kind": "charge",
                "status": "succeeded",
                "customer_id": str(int(customer)),
                "ordered_at": at,
                "gross_amount": money(value),
                "net_amount": money(value),
                "currency": "USD",
            }
        )
    con = duckdb.connect()
    load(con, "orders", rows)
    return KPIEngine(con, catalog=CATALOG)


@pytest.fixture(scope="module")
def fit(cdnow):
    return fit_clv(cdnow, CATALOG["clv"], as_of=CALIBRATION_END)


def test_rfm_from_transactions_matches_the_published_summary(fit):
    ours = {r["customer"]: r for r in fit.customers.to_pylist()}
    with _dataset("cdnow_customers_summary_with_transactions.csv").open() as f:
        published = list(csv.DictReader(f))
    assert len(ours) == len(published) == 2357
    for row in published:
        mine = ours[row["ID"]]
        assert mine["frequency"] == int(row["x"])
        # The summary is printed to 2 decimals (22.345 shows as 22.35): equal within half a cent.
        assert mine["recency"] == pytest.approx(float(row["t_x"]), abs=0.005)
        assert mine["T"] == pytest.approx(float(row["T"]), abs=0.005)
        assert (mine["monetary"] or 0) == pytest.approx(float(row["zbar"]), abs=0.005 + 1e-9)


def test_bgnbd_reproduces_fader_hardie_lee_2005(fit):
    bg = fit.bgnbd
    assert (round(bg.r, 3), round(bg.alpha, 3), round(bg.a, 3), round(bg.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(bg.log_likelihood, 1) == -9582.4
    assert round(float(bg.expected_purchases(39, [2], [30.43], [38.86])[0]), 3) == 1.226


def test_gamma_gamma_reproduces_the_published_fit(fit):
    gg = fit.gamma_gamma
    assert (round(gg.p, 2), round(gg.q, 2), round(gg.v, 2)) == (6.25, 3.74, 15.44)


def test_predictions_per_customer(fit):
    bg, gg = fit.bgnbd, fit.gamma_gamma
    t = fit.customers
    x = np.asarray(t["frequency"].to_pylist(), dtype=float)
    p_alive = np.asarray(t["p_alive"].to_pylist())
    assert np.all(p_alive[x == 0] == 1.0)  # no repeat purchase: no evidence of dropping out yet
    assert np.all((p_alive > 0) & (p_alive <= 1))
    # Gamma-Gamma shrinks a customer's mean spend towards the population mean pγ/(q − 1) by the weight
    # (q − 1)/(px + q − 1): customer 1 (x = 2, mean 22.35) by hand.
    one = t.filter(pc.equal(t["customer"], "1")).to_pylist()[0]
    weight = (gg.q - 1) / (gg.p * 2 + gg.q - 1)
    assert one["spend_per_purchase"] == pytest.approx(weight * gg.p * gg.v / (gg.q - 1) + (1 - weight) * 22.345)
    # CLV over 12 months = Σ monthly expected purchases × spend, discounted 1 % a month (months of 30/7 weeks).
    months = [bg.expected_purchases(i * 30 / 7, [2], [one["recency"]], [one["T"]])[0] for i in range(13)]
    by_hand = sum((months[i] - months[i - 1]) * one["spend_per_purchase"] / 1.01**i for i in range(1, 13))
    assert one["clv"] == pytest.approx(by_hand)
    assert one["expected_purchases"] == pytest.approx(months[12])


def test_clv_kpi_is_the_average_customer_value_at_the_period_end(cdnow, fit):
    s = cdnow.series(CATALOG["clv"], grain="quarter", start=dt.date(1997, 7, 1), end=dt.date(1997, 10, 1))
    row = s.table.to_pylist()[0]
    total = sum(fit.customers["clv"].to_pylist())
    assert row["denominator"] == 2357 and row["numerator"] == pytest.approx(total)
    assert row["value"] == pytest.approx(total / 2357) and s.currency == "USD"


def test_too_few_repeat_buyers_is_a_one_line_error(cdnow):
    with pytest.raises(
        KPIError, match=r"^KPI 'clv': 0 customers with repeat purchases up to 1997-01-01; .*10 or more$"
    ):
        fit_clv(cdnow, CATALOG["clv"], as_of=dt.date(1997, 1, 1))


def test_a_series_leaves_periods_before_enough_repeat_buyers_empty(cdnow):
    # A report's history reaches back before the first repeat purchases: those months have no value,
    # the later ones still do (one early month must not take the whole series down).
    s = cdnow.series(CATALOG["clv"], grain="month", start=dt.date(1996, 12, 1), end=dt.date(1997, 4, 1))
    rows = s.table.to_pylist()
    assert [r["period"] for r in rows] == [dt.date(1996, 12, 1), *(dt.date(1997, m, 1) for m in (1, 2, 3))]
    assert rows[0]["value"] is rows[0]["numerator"] is rows[0]["denominator"] is None
    assert all(r["value"] is not None and r["value"] > 0 for r in rows[2:])


def test_a_series_with_no_period_to_fit_is_the_fits_error(cdnow):
    with pytest.raises(KPIError, match=r"^KPI 'clv': .* up to 1996-12-31"):
        cdnow.series(CATALOG["clv"], grain="month", start=dt.date(1996, 11, 1), end=dt.date(1997, 1, 1))


def test_bgnbd_input_checks():
    with pytest.raises(ValueError, match="0 ≤ recency ≤ T"):
        fit_bgnbd([1], [5.0], [3.0])
    assert BGNBD(0.243, 4.414, 0.793, 2.426, 0).p_alive([0], [0], [10])[0] == 1.0


def test_the_fits_do_not_depend_on_the_order_of_the_customers():
    # SQL returns the customers in any order: identical runs must give identical parameters, bit for bit.
    rng = np.random.default_rng(3)
    x = rng.poisson(2.0, 500).astype(float)
    T = rng.uniform(20, 60, 500)
    tx = np.where(x > 0, rng.uniform(0, 1, 500) * T, 0.0)
    m = np.where(x > 0, rng.gamma(4.0, 12.0, 500), 0.0)
    from kpihub.models.clv import fit_gamma_gamma

    shuffled = rng.permutation(500)
    assert fit_gamma_gamma(x, m) == fit_gamma_gamma(x[shuffled], m[shuffled])
    assert fit_bgnbd(x, tx, T) == fit_bgnbd(x[shuffled], tx[shuffled], T[shuffled])
