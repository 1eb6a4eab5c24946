"""What each canonical table derives from a file's columns when the file does not say (column-wise).

* every ``currency`` is upper case (ISO 4217);
* daily tables: ``time_zone`` is the mapping's ``timezone`` when the file has no such column;
* ``ad_performance_daily``: a campaign-level export has no ad group or ad, which the key holds as ``""``;
* ``orders``: ``kind`` is ``charge`` and ``status`` ``succeeded`` unless given; ``net_amount`` is
  ``gross_amount − refunded_amount`` (no refund: 0) for a succeeded charge and 0 for any other
  status (pending, voided: as the Stripe source does), unless given;
* ``crm_contacts``: ``lifecycle_stage`` is read case- and space-insensitively (HubSpot's labels
  "Marketing Qualified Lead", its ids ``marketingqualifiedlead`` and ``mql`` are all ``mql``); any
  other stage is an error naming its row. ``became_<stage>_at`` means "reached at least this stage":
  the earliest of its own date and every later stage's, as the HubSpot source computes it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kpihub import LIFECYCLE_STAGES, MONEY
from kpihub_files.mapping import FileMapping

#: Funnel order of the ``became_<stage>_at`` columns, last stage first.
FUNNEL = ("customer", "opportunity", "sql", "mql", "lead")
STAGE_SPELLINGS = {s: s for s in LIFECYCLE_STAGES} | {
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
}


#: Key columns a table fills itself when the file has none (so they are not "missing").
DEFAULTED = {"ad_performance_daily": ("ad_group_id", "ad_id")}


class BadValue(Exception):
    """A value a table rule refuses: the canonical column, the record's index in its batch, why."""

    def __init__(self, column: str, index: int, message: str) -> None:
        super().__init__(message)
        self.column, self.index, self.message = column, index, message


def derive(table: str, columns: dict[str, pa.Array], given: set[str], mapping: FileMapping, rows: int) -> None:
    """Fill in what ``table``'s rules derive, in place; ``given`` are the columns the file or constants set."""
    if "currency" in columns and "currency" in given:
        columns["currency"] = pc.utf8_upper(columns["currency"])
    if "time_zone" in columns and "time_zone" not in given and mapping.timezone:
        columns["time_zone"] = pa.repeat(pa.scalar(mapping.timezone), rows)
    if table == "ad_performance_daily":
        for key in ("ad_group_id", "ad_id"):
            if key not in given:
                columns[key] = pa.repeat(pa.scalar(""), rows)
    elif table == "orders":
        _orders(columns, given, rows)
    elif table == "crm_contacts":
        _contacts(columns, given)


def _orders(columns: dict[str, pa.Array], given: set[str], rows: int) -> None:
    for column, default in (("kind", "charge"), ("status", "succeeded")):
        if column not in given:
            columns[column] = pa.repeat(pa.scalar(default), rows)
    if "net_amount" not in given and "gross_amount" in given:
        # One digit less each side, so the difference still fits 38 digits (money never needs 28 before the point).
        narrow = pa.decimal128(MONEY.precision - 1, MONEY.scale)
        refunded = pc.fill_null(columns["refunded_amount"], pa.scalar(0, MONEY)).cast(narrow)
        net = pc.subtract(columns["gross_amount"].cast(narrow), refunded).cast(MONEY)
        # Like the Stripe source: a charge that did not succeed (pending, voided) brings in nothing.
        succeeded = pc.fill_null(pc.equal(columns["status"], "succeeded"), False)
        columns["net_amount"] = pc.if_else(succeeded, net, pa.scalar(0, MONEY))


def _contacts(columns: dict[str, pa.Array], given: set[str]) -> None:
    if "lifecycle_stage" in given:
        columns["lifecycle_stage"] = _stages(columns["lifecycle_stage"])
    later: pa.Array | None = None
    for stage in FUNNEL:
        name = f"became_{stage}_at"
        if later is not None:
            columns[name] = _earliest(columns[name], later)
        later = columns[name]


def _stages(raw: pa.Array) -> pa.Array:
    key = pc.replace_substring_regex(pc.utf8_lower(raw), r"[\s_-]+", "")
    idx = pc.index_in(key, value_set=pa.array(list(STAGE_SPELLINGS), pa.string()))
    unknown = pc.and_(pc.is_null(idx), pc.is_valid(raw))
    if pc.any(unknown).as_py():
        i = pc.index(unknown, True).as_py()
        raise BadValue(
            "lifecycle_stage",
            i,
            f"unknown lifecycle stage {raw[i].as_py()!r} (known: {', '.join(LIFECYCLE_STAGES)}; "
            "map it with values.lifecycle_stage)",
        )
    return pc.take(pa.array(list(STAGE_SPELLINGS.values()), pa.string()), idx)


def _earliest(a: pa.Array, b: pa.Array) -> pa.Array:
    # min_element_wise has no kernel for zoned timestamps: compare the int64 epoch values.
    return pc.min_element_wise(a.cast(pa.int64()), b.cast(pa.int64()), skip_nulls=True).cast(a.type)
