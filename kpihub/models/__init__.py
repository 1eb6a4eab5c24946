"""Statistical models behind ``model`` KPIs, fitted on the synced data.

``clv``: BG/NBD + Gamma-Gamma customer lifetime value (:mod:`kpihub.models.clv`)
over a KPI's purchase measure. Options (``KPI.options``): ``customer`` (key
column, default ``customer_id``), ``months`` (horizon, 12), ``discount``
(monthly rate, 0.01), ``unit_days`` (time unit of the fit, 7: weeks).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from kpihub.errors import KPIError
from kpihub.kpis.compiler import rfm_sql
from kpihub.kpis.periods import Grain, period_starts, shift
from kpihub.kpis.spec import KPI

if TYPE_CHECKING:
    from kpihub.kpis.engine import KPIEngine, KPISeries
    from kpihub.models.clv import BGNBD, GammaGamma


@dataclass(frozen=True)
class CLVFit:
    """The fitted models and one row per customer (RFM, P(alive), expected purchases, CLV)."""

    bgnbd: BGNBD
    gamma_gamma: GammaGamma
    customers: pa.Table
    as_of: dt.date


__all__ = ["MODELS", "CLVFit", "fit_clv", "model_series"]

MODELS = ("clv",)


def fit_clv(engine: KPIEngine, kpi: KPI, *, as_of: dt.date) -> CLVFit:
    """Fit BG/NBD and Gamma-Gamma on ``kpi``'s purchases up to ``as_of`` and score every customer.

    ``customers``: ``customer, first_purchase, frequency, recency, T, monetary`` (see
    :func:`kpihub.kpis.compiler.rfm_sql`) plus ``p_alive``, ``expected_purchases`` and
    ``spend_per_purchase`` (Gamma-Gamma) over the horizon, and ``clv``.
    """
    import numpy as np

    from kpihub.models.clv import customer_lifetime_value, fit_bgnbd, fit_gamma_gamma

    opts = dict(kpi.options)
    unit_days = float(opts.get("unit_days", 7))
    months = int(opts.get("months", 12))
    discount = float(opts.get("discount", 0.01))
    fx = engine.currency if engine.fx else None
    sql = rfm_sql(kpi, as_of=as_of, timezone=engine.timezone, unit_days=unit_days, fx_currency=fx)
    rfm = engine.query(kpi, sql)
    x = np.asarray(rfm["frequency"].to_numpy(zero_copy_only=False), dtype=float)
    repeaters = int((x > 0).sum())
    if repeaters < 10:
        raise KPIError(
            f"KPI {kpi.id!r}: {repeaters} customers with repeat purchases up to {as_of}; the CLV models need 10 or more"
        )
    tx = rfm["recency"].to_numpy(zero_copy_only=False)
    T = rfm["T"].to_numpy(zero_copy_only=False)
    m = np.nan_to_num(np.asarray(rfm["monetary"].to_numpy(zero_copy_only=False), dtype=float))
    # A mean spend is a float sum whose last bits depend on the order the engine added the rows in
    # (DuckDB's and PostgreSQL's, or one engine's after a re-sync), and a flat likelihood turns those
    # bits into different parameters: the same purchases must fit the same model. Micro-units keep
    # every cent.
    m = np.round(m, 6)
    bg = fit_bgnbd(x, tx, T)
    gg = fit_gamma_gamma(x, m)
    if gg.q <= 1:
        raise KPIError(
            f"KPI {kpi.id!r}: the spend model has no finite mean (q = {gg.q:.3f} ≤ 1) for data up to {as_of}"
        )
    horizon = months * 30 / unit_days
    values = customer_lifetime_value(
        bg, gg, x, tx, T, m, months=months, units_per_month=30 / unit_days, monthly_discount_rate=discount
    )
    out = rfm.append_column("p_alive", pa.array(bg.p_alive(x, tx, T)))
    out = out.append_column("expected_purchases", pa.array(bg.expected_purchases(horizon, x, tx, T)))
    out = out.append_column("spend_per_purchase", pa.array(gg.expected_spend(x, m)))
    out = out.append_column("clv", pa.array(values))
    return CLVFit(bg, gg, out, as_of)


def model_series(
    engine: KPIEngine, kpi: KPI, *, grain: Grain, start: dt.date, end: dt.date, currency: str | None
) -> KPISeries:
    """A ``model`` KPI per period: fitted on the data up to each period's last day.

    ``clv``: numerator = Σ CLV over the customers seen by then, denominator = their number,
    value = the average CLV per customer.
    """
    from kpihub.kpis.engine import KPISeries

    if kpi.model not in MODELS:
        raise KPIError(f"KPI {kpi.id!r}: unknown model {kpi.model!r} (models: {', '.join(MODELS)})")
    rows: list[dict] = []
    error: KPIError | None = None
    for period in period_starts(start, end, grain):
        last_day = shift(period, grain, 1) - dt.timedelta(days=1)
        try:
            table = fit_clv(engine, kpi, as_of=last_day).customers
        except KPIError as exc:
            # Too little history by then (a report's series reaching back before the repeat buyers):
            # that period has no value; the others still do. With none fitted, the fit's error is the answer.
            error = exc
            rows.append({"period": period, "numerator": None, "denominator": None, "value": None})
            continue
        total = float(pc.sum(table["clv"]).as_py() or 0.0)
        count = len(table)
        rows.append({"period": period, "numerator": total, "denominator": float(count), "value": total / count})
    if error is not None and all(r["value"] is None for r in rows):
        raise error
    schema = pa.schema(
        [("period", pa.date32()), ("numerator", pa.float64()), ("denominator", pa.float64()), ("value", pa.float64())]
    )
    return KPISeries(kpi, grain, pa.Table.from_pylist(rows, schema=schema), currency)
