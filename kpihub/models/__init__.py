"""Statistical models behind ``model`` KPIs, fitted on the synced data.

``clv``: BG/NBD + Gamma-Gamma customer lifetime value (:mod:`kpihub.models.clv`)
over a KPI's purchase measure. Options (``KPI.options``): ``customer`` (key
column, default ``customer_id``), ``months`` (horizon, 12), ``discount``
(monthly rate, 0.01), ``unit_days`` (time unit of the fit, 7: weeks).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from kpihub.errors import KPIError
from kpihub.kpis.compiler import rfm_sql
from kpihub.kpis.periods import Grain, period_starts, shift
from kpihub.kpis.spec import KPI

if TYPE_CHECKING:
    from kpihub.kpis.engine import KPIEngine, KPISeries

__all__ = ["MODELS", "clv_table", "model_series"]

MODELS = ("clv",)


def clv_table(engine: KPIEngine, kpi: KPI, *, as_of: dt.date) -> pa.Table:
    """One row per customer seen up to ``as_of``: RFM, P(alive), expected purchases and CLV.

    The models are fitted on the same rows (calibration ends on ``as_of``).
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
    meta = {
        "bgnbd": f"r={bg.r:.6g} alpha={bg.alpha:.6g} a={bg.a:.6g} b={bg.b:.6g} ll={bg.log_likelihood:.6g}",
        "gamma_gamma": f"p={gg.p:.6g} q={gg.q:.6g} v={gg.v:.6g} ll={gg.log_likelihood:.6g}",
        "as_of": as_of.isoformat(),
        "months": str(months),
    }
    out = rfm.append_column("p_alive", pa.array(bg.p_alive(x, tx, T)))
    out = out.append_column("expected_purchases", pa.array(bg.expected_purchases(horizon, x, tx, T)))
    out = out.append_column("expected_spend", pa.array(gg.expected_spend(x, m)))
    out = out.append_column("clv", pa.array(values))
    return out.replace_schema_metadata(meta)


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
    rows = []
    for period in period_starts(start, end, grain):
        last_day = shift(period, grain, 1) - dt.timedelta(days=1)
        table = clv_table(engine, kpi, as_of=last_day)
        total = float(pc.sum(table["clv"]).as_py() or 0.0)
        count = len(table)
        rows.append({"period": period, "numerator": total, "denominator": float(count), "value": total / count})
    schema = pa.schema(
        [("period", pa.date32()), ("numerator", pa.float64()), ("denominator", pa.float64()), ("value", pa.float64())]
    )
    return KPISeries(kpi, grain, pa.Table.from_pylist(rows, schema=schema), currency)
