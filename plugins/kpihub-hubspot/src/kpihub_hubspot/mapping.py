"""HubSpot raw batches -> canonical ``crm_contacts`` and ``crm_deals``, column-wise.

Rules (also in the plugin README):

* A cleared property arrives as ``""``: email and company id become null.
* Lifecycle stages map ``subscriber, lead, marketingqualifiedlead → mql,
  salesqualifiedlead → sql, opportunity, customer, evangelist, other``; custom
  stage ids need ``lifecycle_stage_map``. An unknown stage fails the sync
  (naming contact and stage) unless ``on_unknown_lifecycle_stage = "other"``.
* ``became_<stage>_at`` means "reached at least this stage": the earliest of
  the stage's own ``hs_lifecyclestage_<stage>_date`` and every later stage's
  date, so a contact who skipped "lead" still counts as a lead.
* A deal is closed/won from ``hs_is_closed`` / ``hs_is_closed_won``, falling
  back to its stage's metadata (``isClosed``, probability 1.0 = won).
  ``closed_at`` is ``closedate`` for closed deals only (on open deals HubSpot's
  closedate is an expected date). A null ``deal_currency_code`` means the
  account's company currency; where that is unknown (account details answer
  404 and no ``company_currency`` setting), a deal with an amount and no
  currency is an error naming it, and one without an amount keeps a null
  currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kpihub import LIFECYCLE_STAGES, ConfigError, NormalizationError

HUBSPOT_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
STANDARD_STAGES = {
    "subscriber": "subscriber",
    "lead": "lead",
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
    "opportunity": "opportunity",
    "customer": "customer",
    "evangelist": "evangelist",
    "other": "other",
}


def stage_map(custom: Mapping[str, str]) -> dict[str, str]:
    """Standard stages plus the user's ``lifecycle_stage_map``."""
    for key, value in custom.items():
        if value not in LIFECYCLE_STAGES:
            raise ConfigError(
                f"source 'hubspot': lifecycle_stage_map[{key!r}] = {value!r} is not a canonical stage "
                f"({', '.join(LIFECYCLE_STAGES)})"
            )
    return {**STANDARD_STAGES, **custom}


def contacts(
    batch: pa.RecordBatch, stages: Mapping[str, str], *, on_unknown: str = "fail", stream: str = "contacts"
) -> pa.RecordBatch:
    raw_stage = batch.column("lifecyclestage")
    keys = pa.array(list(stages), pa.string())
    idx = pc.index_in(raw_stage, value_set=keys)
    unknown = pc.and_(pc.is_null(idx), pc.is_valid(raw_stage))
    canonical = pc.take(pa.array(list(stages.values()), pa.string()), idx)
    if pc.any(unknown).as_py():
        if on_unknown == "fail":
            i = pc.index(unknown, True).as_py()
            contact, stage = batch.column("id")[i].as_py(), raw_stage[i].as_py()
            raise NormalizationError(
                f"stream {stream!r}, record id={contact!r}, field 'lifecyclestage': unknown lifecycle stage "
                f"{stage!r}; map it with lifecycle_stage_map in [sources.<id>] or set "
                'on_unknown_lifecycle_stage = "other"',
                stream=stream,
                field="lifecyclestage",
                record_key={"id": contact},
            )
        canonical = pc.if_else(unknown, pa.scalar("other"), canonical)
    date = {s: batch.column(f"hs_lifecyclestage_{s}_date") for s in HUBSPOT_STAGES}
    customer = date["customer"]
    opportunity = _earliest(date["opportunity"], customer)
    sql = _earliest(date["salesqualifiedlead"], opportunity)
    mql = _earliest(date["marketingqualifiedlead"], sql)
    lead = _earliest(date["lead"], mql)
    return pa.RecordBatch.from_pydict(
        {
            "contact_id": batch.column("id"),
            "email": _blank_is_null(batch.column("email")),
            "company_id": _blank_is_null(batch.column("associatedcompanyid")),
            "lifecycle_stage": canonical,
            "original_source": batch.column("hs_analytics_source"),
            "created_at": batch.column("createdate"),
            "updated_at": batch.column("lastmodifieddate"),
            "became_lead_at": lead,
            "became_mql_at": mql,
            "became_sql_at": sql,
            "became_opportunity_at": opportunity,
            "became_customer_at": customer,
        }
    )


def _blank_is_null(values: pa.Array) -> pa.Array:
    # HubSpot sends "" for a property whose value was cleared.
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def _earliest(a: pa.Array, b: pa.Array) -> pa.Array:
    # min_element_wise has no kernel for zoned timestamps: compare the int64 epoch values.
    earliest = pc.min_element_wise(a.cast(pa.int64()), b.cast(pa.int64()), skip_nulls=True)
    return earliest.cast(a.type)


@dataclass
class StageLookup:
    """Deal stages by ``pipeline␟stage`` key, as Arrow arrays for ``take``."""

    keys: pa.Array
    pipeline_labels: pa.Array
    stage_labels: pa.Array
    is_closed: pa.Array
    is_won: pa.Array

    @classmethod
    def from_pipelines(cls, pipelines: Sequence[Mapping[str, Any]]) -> StageLookup:
        keys, plabels, slabels, closed, won = [], [], [], [], []
        for p in pipelines:
            for s in p.get("stages") or []:
                meta = s.get("metadata") or {}
                is_closed = str(meta.get("isClosed", "false")).lower() == "true"
                try:
                    probability = float(meta.get("probability", 0))
                except (TypeError, ValueError):
                    probability = 0.0
                keys.append(f"{p.get('id')}\x1f{s.get('id')}")
                plabels.append(p.get("label"))
                slabels.append(s.get("label"))
                closed.append(is_closed)
                won.append(is_closed and probability >= 1.0)
        return cls(
            pa.array(keys, pa.string()),
            pa.array(plabels, pa.string()),
            pa.array(slabels, pa.string()),
            pa.array(closed, pa.bool_()),
            pa.array(won, pa.bool_()),
        )


def deals(
    batch: pa.RecordBatch,
    stages: StageLookup,
    company_currency: str | None,
    *,
    stream: str = "deals",
    why_unknown: str = "",
) -> pa.RecordBatch:
    """``crm_deals`` rows; a deal with an amount and no currency fails when the company currency is unknown.

    Money is never added up across currencies, and a null currency would slip past that check, so it is
    refused rather than stored; a deal without an amount keeps a null currency (it adds nothing up).
    """
    key = pc.binary_join_element_wise(batch.column("pipeline"), batch.column("dealstage"), "\x1f")
    idx = pc.index_in(key, value_set=stages.keys)
    is_closed = pc.coalesce(batch.column("hs_is_closed"), pc.take(stages.is_closed, idx))
    is_won = pc.coalesce(batch.column("hs_is_closed_won"), pc.take(stages.is_won, idx))
    closed_at = pc.if_else(
        pc.fill_null(is_closed, False), batch.column("closedate"), pa.scalar(None, batch.column("closedate").type)
    )
    currency = batch.column("deal_currency_code")
    if company_currency:
        currency = pc.coalesce(currency, pa.scalar(company_currency))
    else:
        _require_currency(batch, currency, stream, why_unknown)
    return pa.RecordBatch.from_pydict(
        {
            "deal_id": batch.column("id"),
            "name": batch.column("dealname"),
            "pipeline_id": batch.column("pipeline"),
            "pipeline": pc.take(stages.pipeline_labels, idx),
            "stage_id": batch.column("dealstage"),
            "stage": pc.take(stages.stage_labels, idx),
            "amount": batch.column("amount"),
            "currency": pc.utf8_upper(currency),
            "created_at": batch.column("createdate"),
            "closed_at": closed_at,
            "is_closed": is_closed,
            "is_won": is_won,
            "updated_at": batch.column("hs_lastmodifieddate"),
        }
    )


def _require_currency(batch: pa.RecordBatch, currency: pa.Array, stream: str, why_unknown: str) -> None:
    priced_without = pc.and_(pc.is_valid(batch.column("amount")), pc.is_null(currency))
    if not pc.any(priced_without).as_py():
        return
    deal = batch.column("id")[pc.index(priced_without, True).as_py()].as_py()
    raise NormalizationError(
        f"stream {stream!r}, record id={deal!r}, field 'deal_currency_code': the deal has an amount but no "
        f"currency, and the account's company currency is unknown{why_unknown}; "
        "set company_currency in [sources.<id>]",
        stream=stream,
        field="deal_currency_code",
        record_key={"id": deal},
    )
