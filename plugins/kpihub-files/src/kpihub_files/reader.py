"""Stream a CSV or Parquet file as record batches, each knowing the file line of its records.

CSV values are read as text (typing is the canonical schema's job, and names the bad row). A
record's line is the 1-based line of the file it starts on: the header is line 1, and a quoted
value holding line breaks (Shopify's notes, HubSpot's messages) moves every later record down,
which the reader counts column-wise per batch.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kpihub import ConfigError, NormalizationError
from kpihub_files.mapping import FileMapping

BATCH_ROWS = 50_000
#: CSV bytes per batch: ~100k rows of a typical export; much smaller batches cost more per row downstream.
CSV_BLOCK_BYTES = 8 << 20


@dataclass
class Chunk:
    """A batch of the file's records and where in the file they are."""

    batch: pa.RecordBatch
    #: Line (CSV) or row (Parquet) of the batch's first record, 1-based.
    first: int
    #: Per record, the line breaks inside its quoted values (``None``: none in this batch).
    breaks: pa.Array | None = None

    def line(self, index: int) -> int:
        """The 1-based file line (Parquet: row) record ``index`` of the batch starts on."""
        if self.breaks is None or index == 0:
            return self.first + index
        return self.first + index + int(pc.sum(self.breaks.slice(0, index)).as_py() or 0)

    def next_first(self) -> int:
        """The line of the record after this batch."""
        return self.line(self.batch.num_rows)


def chunks(path: Path, mapping: FileMapping) -> Iterator[Chunk]:
    """The file's records in batches; ``ConfigError`` for a file that is not CSV or Parquet."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        first = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield Chunk(batch, first)
            first += batch.num_rows
        return
    if suffix != ".csv":
        raise ConfigError(f"{path}: only .csv and .parquet files are read")
    yield from _csv_chunks(path, mapping)


def header(path: Path, mapping: FileMapping) -> list[str]:
    """The CSV header's column names (a UTF-8 byte-order mark dropped)."""
    encoding = "utf-8-sig" if mapping.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else mapping.encoding
    with open(path, newline="", encoding=encoding) as fh:
        return next(csv.reader(fh, delimiter=mapping.delimiter), [])


def _csv_chunks(path: Path, mapping: FileMapping) -> Iterator[Chunk]:
    names = header(path, mapping)
    options = pacsv.ConvertOptions(
        # Only an empty field is null: "n/a" in a number column is a mistake to report, not a null.
        column_types={n: pa.string() for n in names},
        strings_can_be_null=True,
        null_values=[""],
    )
    parse = pacsv.ParseOptions(delimiter=mapping.delimiter, newlines_in_values=True)
    read = pacsv.ReadOptions(encoding=mapping.encoding, block_size=CSV_BLOCK_BYTES)
    first = 2
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=options)
        for batch in reader:
            chunk = Chunk(batch, first, _breaks(batch))
            first = chunk.next_first()
            yield chunk
    except pa.ArrowInvalid as exc:
        raise NormalizationError(f"{path}: {_parse_error(path, mapping, len(names), exc)}") from None


def _breaks(batch: pa.RecordBatch) -> pa.Array | None:
    total: pa.Array | None = None
    for column in batch.columns:
        if not pa.types.is_string(column.type):
            continue
        counts = pc.fill_null(pc.count_substring(column, "\n"), 0)
        total = counts if total is None else pc.add(total, counts)
    if total is None or not (pc.sum(total).as_py() or 0):
        return None
    return total


def _parse_error(path: Path, mapping: FileMapping, width: int, exc: pa.ArrowInvalid) -> str:
    """The line Arrow's parser stopped at: found again with the csv module (the error path only)."""
    message = str(exc).removeprefix("CSV parse error: ").split(":")[0]
    try:
        with open(path, newline="", encoding=mapping.encoding) as fh:
            rows = csv.reader(fh, delimiter=mapping.delimiter)
            start = 1
            for row in rows:
                if row and len(row) != width:
                    return f"row {start}: {len(row)} fields where the header has {width}"
                start = rows.line_num + 1
    except (csv.Error, UnicodeDecodeError) as err:
        return f"row {start}: {err}"
    return message
