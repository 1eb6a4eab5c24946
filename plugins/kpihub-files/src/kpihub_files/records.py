"""A file's batches -> canonical batches: select and rename, skip, constants, convert, derive."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from kpihub import ConfigError, NormalizationError
from kpihub_files.convert import conversion, describe, first_bad
from kpihub_files.mapping import FileMapping
from kpihub_files.reader import Chunk
from kpihub_files.tables import DEFAULTED, BadValue, derive

ConvertErrors = (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError)


class FileRecords:
    """Converts the chunks of one file for one canonical table (its mapping checked on the first chunk)."""

    def __init__(self, path: Path, table: str, schema: pa.Schema, mapping: FileMapping) -> None:
        self.path, self.table, self.schema, self.mapping = path, table, schema, mapping
        self.conversions = {f.name: conversion(f, mapping) for f in schema}
        self.checked = False

    def convert(self, chunk: Chunk) -> tuple[pa.RecordBatch, int]:
        """The chunk as a batch of the table's columns, and how many rows ``skip_empty`` dropped."""
        if not self.checked:
            self._check_header(chunk.batch.schema.names)
            self.checked = True
        kept = self._kept(chunk.batch)
        batch = chunk.batch if kept is None else chunk.batch.take(kept)
        columns: dict[str, pa.Array] = {}
        given: set[str] = set()
        for f in self.schema:
            values = self._column(f, batch, chunk, kept)
            if values is not None:
                given.add(f.name)
            columns[f.name] = pa.nulls(batch.num_rows, f.type) if values is None else values
        try:
            derive(self.table, columns, given, self.mapping, batch.num_rows)
        except BadValue as bad:
            source = self.mapping.source_of(bad.column) or bad.column
            raise self._error(chunk, kept, bad.index, source, bad.column, bad.message) from None
        arrays = [columns[f.name] for f in self.schema]
        skipped = 0 if kept is None else chunk.batch.num_rows - len(kept)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema), skipped

    def _column(self, f: pa.Field, batch: pa.RecordBatch, chunk: Chunk, kept: pa.Array | None) -> pa.Array | None:
        convert = self.conversions[f.name]
        if f.name in self.mapping.constants:
            value = self.mapping.constants[f.name]
            try:
                return convert(pa.repeat(pa.scalar(str(value)), batch.num_rows))
            except ConvertErrors:
                what = describe(f, self.mapping)
                raise ConfigError(f"{self.path}: constants.{f.name} = {value!r}: cannot read it as {what}") from None
        source = self.mapping.source_of(f.name)
        if source is None or source not in batch.schema.names:
            return None
        values = batch.column(source)
        try:
            return convert(values)
        except ConvertErrors:
            i = first_bad(convert, values)
            why = f"cannot read {values[i].as_py()!r} as {describe(f, self.mapping)}"
            raise self._error(chunk, kept, i, source, f.name, why) from None

    def _kept(self, batch: pa.RecordBatch) -> pa.Array | None:
        if not self.mapping.skip_empty:
            return None
        mask: pa.Array | None = None
        for name in self.mapping.skip_empty:
            values = batch.column(name)
            present = pc.is_valid(values)
            if pa.types.is_string(values.type):
                present = pc.and_(present, pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(values), ""), False))
            mask = present if mask is None else pc.and_(mask, present)
        assert mask is not None
        return None if pc.all(mask).as_py() else pc.indices_nonzero(mask)

    def _check_header(self, names: list[str]) -> None:
        """A column the mapping names, or the table needs, that the file lacks: one error naming both."""
        for export, canonical in self.mapping.rename.items():
            if export not in names:
                raise ConfigError(f"{self.path}: column {export!r} is missing (renamed to {canonical})")
        for export in self.mapping.skip_empty:
            if export not in names:
                raise ConfigError(f"{self.path}: column {export!r} is missing (in skip_empty)")
        defaulted = DEFAULTED.get(self.table, ())
        for f in self.schema:
            source = self.mapping.source_of(f.name)
            if f.nullable or f.name in defaulted or source is None or source in names:
                continue
            raise ConfigError(f"{self.path}: column {f.name!r} is missing (needed for {self.table})")

    def _error(
        self, chunk: Chunk, kept: pa.Array | None, index: int, source: str, column: str, why: str
    ) -> NormalizationError:
        row = chunk.line(index if kept is None else int(kept[index].as_py()))
        label = repr(source) if source == column else f"{source!r} ({column})"
        return NormalizationError(f"{self.path}: row {row}, column {label}: {why}", stream=self.table, field=column)
