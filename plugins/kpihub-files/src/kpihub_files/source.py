"""Files as a source: the canonical tables no API covers (surveys, costs, tickets, FX rates …).

Each configured file is a full snapshot of its table and replaces the
source's rows on every sync. Columns are matched by name to the canonical
schema; CSV values are read as text and typed column-wise like API data, so
a bad value is an error naming the file, the row and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field

from kpihub import (
    CheckResult,
    ConfigError,
    DemoSpec,
    Estimate,
    NormalizationError,
    PlanContext,
    Source,
    SourceSettings,
    Stream,
    StreamContext,
    canonical_table,
    coerce_array,
)
from kpihub.http import Requester

#: Tables a file may feed.
TABLES = (
    "survey_responses",
    "costs",
    "support_tickets",
    "social_daily",
    "page_performance_daily",
    "fx_rates_daily",
    "kpi_targets",
)
BATCH_ROWS = 50_000


class FilesSettings(SourceSettings):
    """``[sources.files]``: a path per canonical table (relative to the project file)."""

    base_url: str = Field(default="file://", description="unused: files are read from disk")
    survey_responses: str | None = None
    costs: str | None = None
    support_tickets: str | None = None
    social_daily: str | None = None
    page_performance_daily: str | None = None
    fx_rates_daily: str | None = None
    kpi_targets: str | None = None


def _columns(table: str) -> pa.Schema:
    schema = canonical_table(table).schema
    return pa.schema([f for f in schema if f.name not in ("source_id", "_loaded_at")])


class FileStream(Stream[FilesSettings]):
    """One file (CSV or Parquet) -> one canonical table, typed by the canonical schema."""

    def read(self, ctx: StreamContext[FilesSettings], state: Mapping[str, Any] | None) -> Iterator[pa.RecordBatch]:
        path = ctx.settings.resolve_path(str(getattr(ctx.settings, self.name)))
        if not path.is_file():
            raise ConfigError(f"source {ctx.source_id!r}: {self.name} file {str(path)!r} does not exist")
        row = 0
        for batch in self._batches(path):
            missing = [f.name for f in self.schema if f.name not in batch.schema.names and not f.nullable]
            if missing:
                raise ConfigError(f"{path}: column {missing[0]!r} is missing (needed for {self.name})")
            columns = []
            for f in self.schema:
                if f.name not in batch.schema.names:
                    columns.append(pa.nulls(batch.num_rows, f.type))
                    continue
                values = batch.column(f.name)
                try:
                    columns.append(coerce_array(values, f.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    bad = _first_bad(values, f.type)
                    raise NormalizationError(
                        f"{path}: row {row + bad + 2 if path.suffix.lower() == '.csv' else row + bad + 1}, "
                        f"column {f.name!r}: cannot read {values[bad].as_py()!r} as {f.type}",
                        stream=self.name,
                        field=f.name,
                    ) from None
            row += batch.num_rows
            yield pa.RecordBatch.from_arrays(columns, schema=self.schema)

    @staticmethod
    def _batches(path: Path) -> Iterator[pa.RecordBatch]:
        if path.suffix.lower() == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
            return
        if path.suffix.lower() != ".csv":
            raise ConfigError(f"{path}: only .csv and .parquet files are read")
        # Read every column as text: typing is the canonical schema's job (and names the bad row).
        with open(path, newline="", encoding="utf-8") as fh:
            names = next(csv.reader(fh), [])  # the header only: the file itself is streamed below
        # Only an empty field is null: "n/a" in a number column is a mistake to report, not a null.
        options = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]
        )
        reader = pacsv.open_csv(path, convert_options=options)
        yield from reader

    def to_canonical(self, batch: pa.RecordBatch, ctx: StreamContext[FilesSettings]) -> pa.RecordBatch:
        return batch

    def estimate(self, plan: PlanContext[FilesSettings]) -> Estimate:
        """No request: the whole file, its rows from a Parquet footer or the last read of a CSV."""
        path = plan.settings.resolve_path(str(getattr(plan.settings, self.name)))
        if path.suffix.lower() == ".parquet" and path.is_file():
            rows = pq.ParquetFile(path).metadata.num_rows
            return Estimate("full", None, None, (), rows, False, f"{path.name}: {rows:,} rows (its footer)")
        records, basis = plan.expected_records(self)
        return Estimate("full", None, None, (), records, False, f"{path.name}, no request: {basis}")


def _first_bad(values: pa.Array, target: pa.DataType) -> int:
    for i in range(len(values)):
        try:
            coerce_array(values.slice(i, 1), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return i
    return 0


class FilesSource(Source[FilesSettings]):
    """CSV and Parquet files on disk."""

    name = "files"
    title = "Files (CSV, Parquet)"
    settings_class = FilesSettings

    def streams(self, settings: FilesSettings) -> list[Stream[FilesSettings]]:
        out: list[Stream[FilesSettings]] = []
        for table in TABLES:
            if getattr(settings, table):
                pk = tuple(k for k in canonical_table(table).primary_key if k != "source_id")
                out.append(FileStream(table, _columns(table), primary_key=pk, canonical_table=table))
        return out

    def check(self, settings: FilesSettings, http: Requester) -> CheckResult:
        missing = [
            str(getattr(settings, t))
            for t in TABLES
            if getattr(settings, t) and not settings.resolve_path(str(getattr(settings, t))).is_file()
        ]
        if missing:
            return CheckResult(False, f"file {missing[0]!r} does not exist")
        return CheckResult(True, "every configured file exists")

    def demo(self, *, seed: int = 7, scale: int = 1) -> DemoSpec | None:
        from kpihub_files.demo import DEMO_TARGETS, demo_files

        files = demo_files(seed=seed, scale=scale)
        settings = {name.removesuffix(".csv"): "{demo_dir}/" + name for name in files}
        return DemoSpec(server=None, settings=settings, targets=DEMO_TARGETS, files=files)
