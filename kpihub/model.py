"""The canonical model: one Arrow schema per table, with its primary key and grain.

Every table carries ``source_id`` (which configured source wrote the row) and
``_loaded_at``. Money is ``decimal128(38, 9)`` plus an ISO 4217 ``currency``;
timestamps are UTC; daily tables carry the date in the source's own time
zone and record that zone. Rates are never stored, only their parts.
docs/canonical-model.md documents every column.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = ["CANONICAL_TABLES", "MONEY", "TS", "CanonicalTable", "ad_performance_batch", "canonical_table"]

MONEY = pa.decimal128(38, 9)
TS = pa.timestamp("us", tz="UTC")
#: Field metadata of distinct-people counts per day: summing them beyond a day overcounts
#: (within a day they add up over the other keys, as GA4's own source/medium reports do).
PER_DAY = {"kpihub.adds_up_to": "day", "kpihub.additivity": "additive"}
#: A measure that adds up over every key (impressions, sessions, spend).
ADDITIVE = {"kpihub.additivity": "additive"}
#: A measure that is a level at a moment (followers, an FX rate): never summed.
SNAPSHOT = {"kpihub.additivity": "snapshot"}
#: The metrics of ``ad_performance_daily``.
AD_METRICS = ("impressions", "clicks", "spend", "conversions", "conversion_value")


@dataclass(frozen=True)
class CanonicalTable:
    """A canonical table: name, Arrow schema, primary key, grain, what it feeds."""

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...]
    grain: str
    time_column: str | None = None


def _table(
    name: str, grain: str, pk: tuple[str, ...], fields: list[pa.Field], time_column: str | None = None
) -> CanonicalTable:
    common = [pa.field("source_id", pa.string(), nullable=False)]
    schema = pa.schema(common + fields + [pa.field("_loaded_at", TS)])
    return CanonicalTable(name, schema, ("source_id", *pk), grain, time_column)


def _vitals_fields(metric: str, p75_type: pa.DataType, unit: str) -> list[pa.Field]:
    """A Core Web Vital's p75 and its good / needs-improvement / poor shares of page loads (snapshots:
    a 28-day window's values, which no sum or mean over windows reproduces)."""
    shares = [pa.field(f"{metric}_{bin_}_share", pa.float64(), metadata=SNAPSHOT) for bin_ in ("good", "ni", "poor")]
    return [pa.field(f"p75_{metric}{unit}", p75_type, metadata=SNAPSHOT), *shares]


#: Lifecycle stages in funnel order; ``became_<stage>_at`` means "reached at least this stage".
LIFECYCLE_STAGES = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other")

CANONICAL_TABLES: dict[str, CanonicalTable] = {
    t.name: t
    for t in [
        _table(
            "crm_contacts",
            "contact",
            ("contact_id",),
            [
                pa.field("contact_id", pa.string(), nullable=False),
                pa.field("email", pa.string()),
                pa.field("company_id", pa.string()),
                pa.field("lifecycle_stage", pa.string()),
                pa.field("original_source", pa.string()),
                pa.field("created_at", TS),
                pa.field("updated_at", TS),
                pa.field("became_lead_at", TS),
                pa.field("became_mql_at", TS),
                pa.field("became_sql_at", TS),
                pa.field("became_opportunity_at", TS),
                pa.field("became_customer_at", TS),
            ],
            "created_at",
        ),
        _table(
            "crm_deals",
            "deal",
            ("deal_id",),
            [
                pa.field("deal_id", pa.string(), nullable=False),
                pa.field("name", pa.string()),
                pa.field("pipeline_id", pa.string()),
                pa.field("pipeline", pa.string()),
                pa.field("stage_id", pa.string()),
                pa.field("stage", pa.string()),
                pa.field("amount", MONEY),
                pa.field("currency", pa.string()),
                pa.field("created_at", TS),
                pa.field("closed_at", TS),
                pa.field("is_closed", pa.bool_()),
                pa.field("is_won", pa.bool_()),
                pa.field("updated_at", TS),
            ],
            "closed_at",
        ),
        _table(
            "ad_performance_daily",
            "date × platform × account × campaign (× ad group × ad)",
            ("date", "platform", "account_id", "campaign_id", "ad_group_id", "ad_id"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("time_zone", pa.string()),
                pa.field("platform", pa.string(), nullable=False),
                pa.field("account_id", pa.string(), nullable=False),
                pa.field("campaign_id", pa.string(), nullable=False),
                pa.field("campaign_name", pa.string()),
                pa.field("ad_group_id", pa.string(), nullable=False),
                pa.field("ad_id", pa.string(), nullable=False),
                pa.field("impressions", pa.int64(), metadata=ADDITIVE),
                pa.field("clicks", pa.int64(), metadata=ADDITIVE),
                pa.field("spend", MONEY, metadata=ADDITIVE),
                pa.field("conversions", pa.float64(), metadata=ADDITIVE),
                pa.field("conversion_value", MONEY, metadata=ADDITIVE),
                pa.field("currency", pa.string()),
            ],
            "date",
        ),
        _table(
            "web_traffic_daily",
            "date × property × source × medium × campaign",
            ("date", "property_id", "source", "medium", "campaign"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("time_zone", pa.string()),
                pa.field("property_id", pa.string(), nullable=False),
                pa.field("source", pa.string(), nullable=False),
                pa.field("medium", pa.string(), nullable=False),
                pa.field("campaign", pa.string(), nullable=False),
                pa.field("sessions", pa.int64(), metadata=ADDITIVE),
                pa.field("users", pa.int64(), metadata=PER_DAY),
                pa.field("new_users", pa.int64(), metadata=ADDITIVE),
                pa.field("engaged_sessions", pa.int64(), metadata=ADDITIVE),
                pa.field("page_views", pa.int64(), metadata=ADDITIVE),
                pa.field("key_events", pa.float64(), metadata=ADDITIVE),
                pa.field("revenue", MONEY, metadata=ADDITIVE),
                pa.field("currency", pa.string()),
            ],
            "date",
        ),
        _table(
            "landing_pages_daily",
            "date × property × landing page × channel group",
            ("date", "property_id", "landing_page", "channel_group"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("time_zone", pa.string()),
                pa.field("property_id", pa.string(), nullable=False),
                pa.field("landing_page", pa.string(), nullable=False),
                pa.field("channel_group", pa.string(), nullable=False),
                pa.field("sessions", pa.int64(), metadata=ADDITIVE),
                pa.field("engaged_sessions", pa.int64(), metadata=ADDITIVE),
            ],
            "date",
        ),
        _table(
            "orders",
            "order",
            ("order_id",),
            [
                pa.field("order_id", pa.string(), nullable=False),
                pa.field("kind", pa.string()),
                pa.field("parent_order_id", pa.string()),
                pa.field("customer_id", pa.string()),
                pa.field("ordered_at", TS),
                pa.field("status", pa.string()),
                pa.field("gross_amount", MONEY),
                pa.field("refunded_amount", MONEY),
                pa.field("net_amount", MONEY),
                pa.field("tax_amount", MONEY),
                pa.field("currency", pa.string()),
            ],
            "ordered_at",
        ),
        _table(
            "subscriptions",
            "subscription",
            ("subscription_id",),
            [
                pa.field("subscription_id", pa.string(), nullable=False),
                pa.field("customer_id", pa.string()),
                pa.field("status", pa.string()),
                pa.field("started_at", TS),
                pa.field("canceled_at", TS),
                pa.field("ended_at", TS),
                pa.field("mrr", MONEY),
                pa.field("currency", pa.string()),
            ],
            "started_at",
        ),
        _table(
            "survey_responses",
            "response × item",
            ("response_id", "item"),
            [
                pa.field("response_id", pa.string(), nullable=False),
                pa.field("item", pa.string(), nullable=False),
                pa.field("responded_at", TS),
                pa.field("respondent_id", pa.string()),
                pa.field("score", pa.float64()),
                pa.field("scale_min", pa.float64()),
                pa.field("scale_max", pa.float64()),
            ],
            "responded_at",
        ),
        _table(
            "costs",
            "period × category",
            ("period_start", "category"),
            [
                pa.field("period_start", pa.date32(), nullable=False),
                pa.field("period_end", pa.date32()),
                pa.field("category", pa.string(), nullable=False),
                pa.field("amount", MONEY, metadata=ADDITIVE),
                pa.field("currency", pa.string()),
            ],
            "period_start",
        ),
        _table(
            "support_tickets",
            "ticket",
            ("ticket_id",),
            [
                pa.field("ticket_id", pa.string(), nullable=False),
                pa.field("channel", pa.string()),
                pa.field("status", pa.string()),
                pa.field("created_at", TS),
                pa.field("first_response_at", TS),
                pa.field("resolved_at", TS),
                pa.field("agent_replies", pa.int64()),
                pa.field("reopens", pa.int64()),
            ],
            "created_at",
        ),
        _table(
            "social_daily",
            "date × platform × account",
            ("date", "platform", "account_id"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("platform", pa.string(), nullable=False),
                pa.field("account_id", pa.string(), nullable=False),
                pa.field("impressions", pa.int64(), metadata=ADDITIVE),
                pa.field("reach", pa.int64(), metadata=PER_DAY),
                pa.field("engagements", pa.int64(), metadata=ADDITIVE),
                pa.field("followers", pa.int64(), metadata=SNAPSHOT),
            ],
            "date",
        ),
        _table(
            "page_performance_daily",
            "date × page",
            ("date", "page"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("page", pa.string(), nullable=False),
                pa.field("page_loads", pa.int64(), metadata=ADDITIVE),
                pa.field("load_time_ms_total", pa.float64(), metadata=ADDITIVE),
            ],
            "date",
        ),
        _table(
            "page_experience",
            "collection period × target (origin or URL) × form factor",
            ("target_type", "target", "form_factor", "period_end"),
            [
                pa.field("period_start", pa.date32()),
                pa.field("period_end", pa.date32(), nullable=False),
                pa.field("target_type", pa.string(), nullable=False),
                pa.field("target", pa.string(), nullable=False),
                pa.field("form_factor", pa.string(), nullable=False),
                *_vitals_fields("lcp", pa.int64(), "_ms"),
                *_vitals_fields("inp", pa.int64(), "_ms"),
                *_vitals_fields("cls", pa.decimal128(12, 4), ""),
            ],
            "period_end",
        ),
        _table(
            "fx_rates_daily",
            "date × currency pair",
            ("date", "base_currency", "quote_currency"),
            [
                pa.field("date", pa.date32(), nullable=False),
                pa.field("base_currency", pa.string(), nullable=False),
                pa.field("quote_currency", pa.string(), nullable=False),
                pa.field("rate", pa.decimal128(38, 12), metadata=SNAPSHOT),
            ],
            "date",
        ),
        _table(
            "kpi_targets",
            "KPI × period",
            ("kpi", "period"),
            [
                pa.field("kpi", pa.string(), nullable=False),
                pa.field("period", pa.string(), nullable=False),
                pa.field("baseline", pa.float64()),
                pa.field("target", pa.float64()),
                pa.field("direction", pa.string()),
            ],
        ),
    ]
}


def canonical_table(name: str) -> CanonicalTable:
    """The canonical table called ``name``; ``KeyError`` names the known ones."""
    try:
        return CANONICAL_TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a canonical table (known: {', '.join(CANONICAL_TABLES)})") from None


def ad_performance_batch(
    *,
    platform: str,
    date: pa.Array,
    time_zone: pa.Array | str,
    account_id: pa.Array,
    campaign_id: pa.Array,
    campaign_name: pa.Array,
    impressions: pa.Array,
    clicks: pa.Array,
    spend: pa.Array,
    conversions: pa.Array,
    conversion_value: pa.Array,
    currency: pa.Array,
    omitted_as_zero: Collection[str] = AD_METRICS,
) -> pa.RecordBatch:
    """A campaign-level ``ad_performance_daily`` batch; the metrics in ``omitted_as_zero`` count as 0 when null.

    Ad platforms omit zero metrics (Google Ads' JSON leaves out proto3 defaults, Meta leaves
    out actions that did not happen); a metric whose absence means "not reported" rather than
    zero is left out of ``omitted_as_zero`` and stays null. Campaign-level rows have no ad
    group or ad, which the key holds as ``""`` (a key column cannot be null).
    """
    import pyarrow.compute as pc

    def metric(name: str, values: pa.Array, type_: pa.DataType, zero: Any) -> pa.Array:
        cast = pc.cast(values, type_, safe=name != "conversion_value")
        return pc.fill_null(cast, pa.scalar(zero, type_)) if name in omitted_as_zero else cast

    n = len(date)
    empty = pa.repeat(pa.scalar(""), n)
    zone = pa.repeat(pa.scalar(time_zone), n) if isinstance(time_zone, str) else time_zone
    return pa.RecordBatch.from_pydict(
        {
            "date": date,
            "time_zone": zone,
            "platform": pa.repeat(pa.scalar(platform), n),
            "account_id": account_id,
            "campaign_id": campaign_id,
            "campaign_name": campaign_name,
            "ad_group_id": empty,
            "ad_id": empty,
            "impressions": metric("impressions", impressions, pa.int64(), 0),
            "clicks": metric("clicks", clicks, pa.int64(), 0),
            "spend": metric("spend", spend, MONEY, 0),
            "conversions": metric("conversions", conversions, pa.float64(), 0.0),
            "conversion_value": metric("conversion_value", conversion_value, MONEY, 0),
            "currency": currency,
        }
    )
