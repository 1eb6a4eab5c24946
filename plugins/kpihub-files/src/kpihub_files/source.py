"""Files as a source: every canonical table from CSV and Parquet exports (Shopify orders, HubSpot contacts …).

Each configured file is a full snapshot of its table and replaces the source's rows on every
sync; a file that fails part-way leaves the previous table (the engine stages a full-table
stream and swaps it in only at the end). Columns are matched by name to the canonical schema,
or mapped (kpihub_files.mapping); CSV values are read as text and typed column-wise, so a bad
value is one error naming the file, its line and the column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationInfo, field_validator

from kpihub import (
    CheckResult,
    ConfigError,
    DemoSpec,
    Estimate,
    PlanContext,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
    canonical_table,
)
from kpihub.http import Requester
from kpihub_files.mapping import ENGINE_COLUMNS, FileMapping, check_columns
from kpihub_files.reader import BATCH_ROWS, chunks
from kpihub_files.records import FileRecords

__all__ = ["BATCH_ROWS", "TABLES", "FileStream", "FilesSettings", "FilesSource"]

#: Tables a file may feed.
TABLES = (
    "orders",
    "subscriptions",
    "web_traffic_daily",
    "ad_performance_daily",
    "crm_contacts",
    "crm_deals",
    "survey_responses",
    "costs",
    "support_tickets",
    "social_daily",
    "page_performance_daily",
    "fx_rates_daily",
    "kpi_targets",
)


class FilesSettings(SourceSettings):
    """``[sources.files]``: per canonical table, a path or a mapping table (paths relative to the project file)."""

    base_url: str = Field(default="file://", description="unused: files are read from disk")
    orders: FileMapping | None = None
    subscriptions: FileMapping | None = None
    web_traffic_daily: FileMapping | None = None
    ad_performance_daily: FileMapping | None = None
    crm_contacts: FileMapping | None = None
    crm_deals: FileMapping | None = None
    survey_responses: FileMapping | None = None
    costs: FileMapping | None = None
    support_tickets: FileMapping | None = None
    social_daily: FileMapping | None = None
    page_performance_daily: FileMapping | None = None
    fx_rates_daily: FileMapping | None = None
    kpi_targets: FileMapping | None = None

    @field_validator(*TABLES, mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator(*TABLES)
    @classmethod
    def _known_columns(cls, value: FileMapping | None, info: ValidationInfo) -> FileMapping | None:
        return None if value is None else check_columns(str(info.field_name), value)

    def mapping(self, table: str) -> FileMapping | None:
        """The file configured for ``table``, if any."""
        value = getattr(self, table)
        return value if isinstance(value, FileMapping) else None


def _columns(table: str) -> pa.Schema:
    schema = canonical_table(table).schema
    return pa.schema([f for f in schema if f.name not in ENGINE_COLUMNS])


class FileStream(Stream[FilesSettings]):
    """One file (CSV or Parquet) -> one canonical table, mapped and typed by the canonical schema."""

    def read(self, ctx: StreamContext[FilesSettings], state: Mapping[str, Any] | None) -> Iterator[pa.RecordBatch]:
        mapping = ctx.settings.mapping(self.name)
        assert mapping is not None  # streams() makes a stream only for a configured table
        path = ctx.settings.resolve_path(mapping.path)
        if not path.is_file():
            raise ConfigError(f"source {ctx.source_id!r}: {self.name} file {str(path)!r} does not exist")
        records = FileRecords(path, self.name, self.schema, mapping)
        skipped = 0
        for chunk in chunks(path, mapping):
            batch, dropped = records.convert(chunk)
            skipped += dropped
            yield batch
        if skipped:
            # Asked for (Shopify's line-item rows), so logged rather than noted as a data-quality issue.
            ctx.log.info("%s: %d rows with an empty %s skipped", path.name, skipped, ", ".join(mapping.skip_empty))

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[FilesSettings]) -> pa.RecordBatch:
        return batch

    def estimate(self, plan: PlanContext[FilesSettings]) -> Estimate:
        """No request: the whole file, its rows from a Parquet footer or the last read of a CSV."""
        mapping = plan.settings.mapping(self.name)
        path = plan.settings.resolve_path(mapping.path if mapping else "")
        if path.suffix.lower() == ".parquet" and path.is_file():
            rows = pq.ParquetFile(path).metadata.num_rows
            return Estimate("full", None, None, (), rows, False, f"{path.name}: {rows:,} rows (its footer)")
        records, basis = plan.expected_records(self)
        return Estimate("full", None, None, (), records, False, f"{path.name}, no request: {basis}")


class FilesSource(Source[FilesSettings]):
    """CSV and Parquet files on disk."""

    name = "files"
    title = "Files (CSV, Parquet)"
    settings_class = FilesSettings

    def streams(self, settings: FilesSettings) -> list[Stream[FilesSettings]]:
        out: list[Stream[FilesSettings]] = []
        for table in TABLES:
            if settings.mapping(table):
                pk = tuple(k for k in canonical_table(table).primary_key if k != "source_id")
                out.append(FileStream(table, _columns(table), primary_key=pk, canonical_table=table))
        return out

    def check(self, settings: FilesSettings, http: Requester) -> CheckResult:
        for table in TABLES:
            mapping = settings.mapping(table)
            if mapping and not settings.resolve_path(mapping.path).is_file():
                return CheckResult(False, f"file {mapping.path!r} does not exist")
        return CheckResult(True, "every configured file exists")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub_files.demo import DEMO_TARGETS, demo_files

        files = demo_files(seed=seed, scale=scale)
        settings = {name.removesuffix(".csv"): "{demo_dir}/" + name for name in files}
        return DemoSpec(server=None, settings=settings, targets=DEMO_TARGETS, files=files)
