"""How one export file maps onto its canonical table: ``[sources.<id>.<table>]`` in kpihub.toml.

A table's setting is either a path (columns already named as the canonical table's) or a
table of mapping keys (see the plugin README and docs/files-source.md)::

    [sources.shop.orders]
    path = "exports/orders_export.csv"
    rename = { "Name" = "order_id", "Total" = "gross_amount" }   # export column -> canonical column
    constants = { kind = "charge" }                               # a value for every row
    values = { status = { paid = "succeeded" } }                  # export value -> canonical value
    timestamp_format = "%Y-%m-%d %H:%M:%S %z"
    skip_empty = ["Total"]                                        # Shopify's line-item rows
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from kpihub import canonical_table

#: Columns the engine fills itself: a file never maps them.
ENGINE_COLUMNS = ("source_id", "_loaded_at")


class FileMapping(BaseModel):
    """One file and how its columns become the canonical table's (every key but ``path`` optional)."""

    model_config = ConfigDict(extra="forbid")

    #: The file (``.csv`` or ``.parquet``), relative to the project file.
    path: str
    #: Export column -> canonical column; other export columns named like a canonical column are used as is.
    rename: dict[str, str] = Field(default_factory=dict)
    #: Canonical column -> a value every row gets (``currency = "SEK"``, ``platform = "facebook"``).
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict)
    #: Canonical column -> {export value -> canonical value} (``status = { paid = "succeeded" }``).
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: Canonical column -> strptime format (``ordered_at = "%m/%d/%Y %H:%M"``).
    formats: dict[str, str] = Field(default_factory=dict)
    #: strptime format of every date column without one in ``formats`` (``"%d.%m.%Y"``).
    date_format: str | None = None
    #: strptime format of every timestamp column without one in ``formats``.
    timestamp_format: str | None = None
    #: IANA zone of timestamps without an offset (default UTC); also the ``time_zone`` of daily tables.
    timezone: str | None = None
    #: Numbers use a decimal comma (``1234,50``).
    decimal_comma: bool = False
    #: Thousands separator to drop from numbers (``"."``, ``" "``, ``","``).
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    #: CSV field separator (``";"`` in many European exports).
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    #: CSV text encoding (``"utf-8"``; a UTF-8 byte-order mark is skipped; ``"cp1252"`` for old Excel).
    encoding: str = "utf-8"
    #: Export columns: rows where any of them is empty are skipped and counted in the sync summary.
    skip_empty: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise PydanticCustomError("zone", "unknown time zone {zone}", {"zone": repr(value)}) from None
        return value

    def source_of(self, column: str) -> str | None:
        """The export column that feeds canonical ``column`` (renamed, else same-named), if any."""
        for export, canonical in self.rename.items():
            if canonical == column:
                return export
        return column if column not in self.constants else None


def check_columns(table: str, mapping: FileMapping) -> FileMapping:
    """``mapping`` if every canonical column it names is one of ``table``'s, each set once."""
    columns = [f.name for f in canonical_table(table).schema if f.name not in ENGINE_COLUMNS]
    named = {"rename": list(mapping.rename.values()), "constants": list(mapping.constants)}
    named |= {"values": list(mapping.values), "formats": list(mapping.formats)}
    for key, names in named.items():
        for name in names:
            if name not in columns:
                raise PydanticCustomError(
                    "column",
                    "{key}: {name} is not a column of {table} (its columns: {columns})",
                    {"key": key, "name": repr(name), "table": table, "columns": ", ".join(columns)},
                )
    targets = list(mapping.rename.values())
    twice = sorted({c for c in targets if targets.count(c) > 1} | (set(targets) & set(mapping.constants)))
    if twice:
        raise PydanticCustomError("column", "{name} is set twice (by rename or constants)", {"name": repr(twice[0])})
    return mapping
