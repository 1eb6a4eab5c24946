"""PostgreSQL ingest: ADBC bulk ingest vs psycopg COPY, from the same Arrow data, same server, same run.

    .venv/bin/python bench/pg_ingest.py --rows 200000 1000000 [--repeat 3]

Starts a throwaway PostgreSQL (kpihub.testing.postgres; fsync off, loopback),
builds an Arrow table shaped like the canonical ``orders`` table (strings,
decimal(38, 9) money, UTC timestamps, a date) and loads it into a fresh
table per variant:

* ``adbc``: ``cursor.adbc_ingest`` (adbc-driver-postgresql: Arrow → binary COPY), then commit;
* ``kpihub``: ``ADBCSession.commit`` of an append (staging table + INSERT … SELECT + state row, one
  transaction) — what a sync does;
* ``psycopg-rows``: psycopg 3 ``COPY … FROM STDIN`` fed ``write_row`` per row from ``to_pylist()``
  (the usual psycopg way);
* ``psycopg-csv``: psycopg 3 ``COPY … (FORMAT csv)`` fed the table written as CSV by pyarrow
  (psycopg's fastest path for Arrow data).

Reports the best of ``--repeat`` runs in rows/s and the ratio to ``adbc``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import adbc_driver_postgresql.dbapi as adbc_pg  # noqa: E402
import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from kpihub.destinations.adbc import ADBCDestination  # noqa: E402
from kpihub.destinations.base import TableWrite  # noqa: E402
from kpihub.testing.postgres import PostgresServer  # noqa: E402

DDL = (
    "(source_id TEXT, order_id TEXT, kind TEXT, customer_id TEXT, ordered_at TIMESTAMPTZ, day DATE, "
    "status TEXT, gross_amount NUMERIC(38, 9), net_amount NUMERIC(38, 9), currency TEXT, quantity BIGINT)"
)


def orders(n: int) -> pa.Table:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    ids = pa.array([f"ch_{i:012d}" for i in range(n)])
    at = pa.array([start + dt.timedelta(seconds=37 * i) for i in range(n)], pa.timestamp("us", tz="UTC"))
    money = pa.array([Decimal(i % 100_000) / 100 for i in range(n)], pa.decimal128(38, 9))
    return pa.table(
        {
            "source_id": pa.array(["stripe"] * n),
            "order_id": ids,
            "kind": pa.array(["charge"] * n),
            "customer_id": pa.array([f"cus_{i % 5000:06d}" for i in range(n)]),
            "ordered_at": at,
            "day": pa.compute.cast(at, pa.date32()),
            "status": pa.array(["succeeded"] * n),
            "gross_amount": money,
            "net_amount": money,
            "currency": pa.array(["EUR"] * n),
            "quantity": pa.array([i % 7 for i in range(n)], pa.int64()),
        }
    )


def run_adbc(uri: str, table: pa.Table, name: str) -> None:
    with adbc_pg.connect(uri) as con, con.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} {DDL}")
        cur.adbc_ingest(name, table, mode="append")
        con.commit()


def run_kpihub(uri: str, table: pa.Table, name: str) -> None:
    with ADBCDestination().open(f"{uri}?schema=bench") as session:
        session.commit([TableWrite(name, table, "append")], {f"bench.{name}": {"rows": table.num_rows}})


def run_psycopg_rows(uri: str, table: pa.Table, name: str) -> None:
    with psycopg.connect(uri) as con, con.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} {DDL}")
        with cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in table.to_pylist():
                copy.write_row(tuple(row.values()))
        con.commit()


def run_psycopg_csv(uri: str, table: pa.Table, name: str) -> None:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    with psycopg.connect(uri) as con, con.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} {DDL}")
        with cur.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
            view = buf.getbuffer()
            for i in range(0, len(view), 1 << 20):
                copy.write(view[i : i + (1 << 20)])
        con.commit()


VARIANTS = {"adbc": run_adbc, "kpihub": run_kpihub, "psycopg-rows": run_psycopg_rows, "psycopg-csv": run_psycopg_csv}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = PostgresServer()
    uri = server.start()
    try:
        print(f"PostgreSQL on {uri}; best of {args.repeat}; {dt.date.today()}")
        print(f"{'rows':>10} {'variant':14} {'rows/s':>12} {'vs adbc':>8}")
        for n in args.rows:
            table = orders(n)
            best: dict[str, float] = {}
            for r in range(args.repeat):
                for variant, fn in VARIANTS.items():
                    name = f"t_{variant.replace('-', '_')}_{n}_{r}"
                    t = time.perf_counter()
                    fn(uri, table, name)
                    best[variant] = min(best.get(variant, float("inf")), time.perf_counter() - t)
            for variant, seconds in best.items():
                print(f"{n:>10,} {variant:14} {n / seconds:>12,.0f} {best['adbc'] / seconds:>7.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
