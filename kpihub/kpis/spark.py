"""KPIs on Apache Spark: kpihub's SQL transpiled by sqlglot, run by a local Spark over the Parquet output.

Optional (``pip install 'kpihub[spark]'``; needs Java 17+). Every table of a
``parquet://`` destination becomes a temporary view over exactly the files its
manifest lists, read with the table's recorded schema, so the rows Spark sees
are the rows DuckDB sees.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from kpihub.destinations.base import DestinationSession
from kpihub.errors import DestinationError, KPIError
from kpihub.kpis.compiler import transpile
from kpihub.secrets import first_line

__all__ = ["SparkBackend", "spark_schema"]

LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")

#: Spark settings for a quiet, single-machine session (override with ``spark_conf``).
DEFAULT_CONF = {
    "spark.master": "local[2]",
    "spark.app.name": "kpihub",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "1",  # KPI queries aggregate small results: one reducer
    # Loopback only (kpihub never talks to a cluster here), and quiet JVM logs.
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG_CONFIG}",
}


class SparkBackend:
    """A local Spark session whose temporary views are the destination's Parquet tables."""

    dialect = "spark"

    def __init__(self, session: DestinationSession, timezone: str, spark_conf: dict[str, str] | None = None) -> None:
        local_files = getattr(session, "local_files", None)
        if getattr(getattr(session, "format", None), "name", None) != "parquet" or local_files is None:
            raise KPIError(f"--engine spark reads Parquet output: it needs a parquet:// destination, not {session.uri}")
        if local_files(next(iter(session.tables()), "")) is None:
            raise KPIError(f"--engine spark reads local Parquet files; {session.uri} is in an object store")
        try:
            with warnings.catch_warnings():
                # pyspark warns at import about pandas versions; kpihub hands results over as Arrow.
                warnings.simplefilter("ignore", FutureWarning)
                from pyspark.logger import PySparkLogger
                from pyspark.sql import SparkSession
        except ImportError:
            raise KPIError("--engine spark needs pyspark: pip install 'kpihub[spark]'") from None
        # The session zone is the reporting zone, as in DuckDB: date arithmetic counts local days.
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).disabled = True  # a failed query is reported once, as a KPIError
        conf = {**DEFAULT_CONF, **(spark_conf or {}), "spark.sql.session.timeZone": timezone}
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            self.spark = builder.getOrCreate()
        except Exception as exc:  # a missing or too old Java surfaces here, as a py4j or runtime error
            raise KPIError(f"--engine spark: cannot start Spark: {first_line(exc)}") from None
        self.spark.conf.set("spark.sql.session.timeZone", timezone)  # also when the session already existed
        self.session = session
        self._views: set[str] = set()
        for name in session.tables():
            self._register(name, [str(p) for p in local_files(name)], session.table_schema(name))

    def _register(self, name: str, paths: list[str], schema: pa.Schema | None) -> None:
        if schema is None:
            return
        struct = spark_schema(schema)
        if paths:
            frame = self.spark.read.schema(struct).parquet(*paths)
        else:
            frame = self.spark.createDataFrame([], struct)
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def query(self, sql: str) -> pa.Table:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-version notice, as above
                return self.spark.sql(transpile(sql, self.dialect)).toArrow()
        except Exception as exc:  # pyspark's AnalysisException and Py4JJavaError share no public base
            raise DestinationError(f"Spark: {first_line(exc)}") from None

    def table_names(self) -> set[str]:
        return set(self._views)

    def close(self) -> None:
        for name in self._views:
            self.spark.catalog.dropTempView(name)
        self._views.clear()


def spark_schema(schema: pa.Schema) -> Any:
    """The Spark ``StructType`` of an Arrow schema (as recorded by the destination)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, _spark_type(f.type, T), f.nullable) for f in schema])


def _spark_type(t: pa.DataType, T: Any) -> Any:  # noqa: N803 - pyspark's module, by its usual name
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_int8(t) or pa.types.is_uint8(t):
        return T.ShortType() if pa.types.is_uint8(t) else T.ByteType()
    if pa.types.is_int16(t) or pa.types.is_uint16(t):
        return T.IntegerType() if pa.types.is_uint16(t) else T.ShortType()
    if pa.types.is_int32(t) or pa.types.is_uint32(t):
        return T.LongType() if pa.types.is_uint32(t) else T.IntegerType()
    if pa.types.is_integer(t):
        return T.LongType()
    if pa.types.is_float32(t):
        return T.FloatType()
    if pa.types.is_floating(t):
        return T.DoubleType()
    if pa.types.is_decimal(t):
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return T.StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return T.BinaryType()
    if pa.types.is_date(t):
        return T.DateType()
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz else T.TimestampNTZType()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return T.ArrayType(_spark_type(t.value_type, T))
    if pa.types.is_struct(t):
        return T.StructType([T.StructField(f.name, _spark_type(f.type, T), f.nullable) for f in t])
    if pa.types.is_map(t):
        return T.MapType(_spark_type(t.key_type, T), _spark_type(t.item_type, T))
    raise KPIError(f"--engine spark: no Spark type for Arrow {t}")


def java_available() -> bool:
    """True when a Java runtime is on PATH or JAVA_HOME (Spark needs one)."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and os.path.exists(os.path.join(home, "bin", "java"))))
