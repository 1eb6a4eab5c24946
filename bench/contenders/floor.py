"""The floor: a hand-written httpx + orjson + column-wise pyarrow → ParquetWriter loop.

No retries, no state, no schema checks: what a careful engineer writes for one API by hand.
Each page becomes one record batch: ``pa.array(records, type=struct)`` parses the page in C,
then one cast per column (the timestamps, the GA4 metrics).
"""

from __future__ import annotations

import sys

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.pages import GA4_DIMENSIONS, GA4_METRICS, GA4_PATH, PROPERTIES, TIMESTAMP_PROPERTIES

TS = pa.timestamp("us", "UTC")
HUBSPOT_WIRE = pa.struct(
    [
        ("id", pa.string()),
        ("properties", pa.struct([(p, pa.string()) for p in PROPERTIES])),
        ("createdAt", pa.string()),
        ("updatedAt", pa.string()),
        ("archived", pa.bool_()),
    ]
)
GA4_WIRE = pa.struct(
    [
        ("dimensionValues", pa.list_(pa.struct([("value", pa.string())]))),
        ("metricValues", pa.list_(pa.struct([("value", pa.string())]))),
    ]
)
METRIC_TYPES = {"TYPE_INTEGER": pa.int64(), "TYPE_FLOAT": pa.float64(), "TYPE_CURRENCY": pa.float64()}


def hubspot_batch(records: list[dict]) -> pa.RecordBatch:
    arr = pa.array(records, type=HUBSPOT_WIRE)
    cols = {"id": arr.field("id")}
    props = arr.field("properties")
    for name in PROPERTIES:
        col = props.field(name)
        cols[name] = pc.cast(col, TS) if name in TIMESTAMP_PROPERTIES else col
    cols["createdAt"] = pc.cast(arr.field("createdAt"), TS)
    cols["updatedAt"] = pc.cast(arr.field("updatedAt"), TS)
    cols["archived"] = arr.field("archived")
    return pa.RecordBatch.from_pydict(cols)


def ga4_batch(rows: list[dict]) -> pa.RecordBatch:
    arr = pa.array(rows, type=GA4_WIRE)
    n = len(rows)
    cols = {}
    for field, names in (("dimensionValues", GA4_DIMENSIONS), ("metricValues", [m for m, _ in GA4_METRICS])):
        flat = pc.list_flatten(arr.field(field)).field("value")
        k = len(names)
        for j, name in enumerate(names):
            cols[name] = pc.take(flat, pa.array(range(j, n * k, k)))
    cols["date"] = pc.cast(pc.strptime(cols["date"], "%Y%m%d", "s"), pa.date32())
    for name, kind in GA4_METRICS:
        cols[name] = pc.cast(cols[name], METRIC_TYPES[kind])
    return pa.RecordBatch.from_pydict(cols)


def main(shape: str, url: str, out: str, ga4_page: int) -> int:
    client = httpx.Client(base_url=url, timeout=60)
    writer, n = None, 0
    params: dict[str, object]
    if shape == "hubspot":
        path, params = "/crm/v3/objects/contacts", {"limit": 100}
    else:
        path, params = GA4_PATH, {"limit": ga4_page, "offset": 0}
    while True:
        response = client.get(path, params=params)
        response.raise_for_status()
        data = orjson.loads(response.content)
        records = data["results"] if shape == "hubspot" else data.get("rows", [])
        if records:
            batch = hubspot_batch(records) if shape == "hubspot" else ga4_batch(records)
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema, compression="zstd")
            writer.write_batch(batch)
            n += len(records)
        if shape == "hubspot":
            after = (data.get("paging") or {}).get("next", {}).get("after")
            if not after:
                break
            params = {"limit": 100, "after": after}
        else:
            offset = int(params["offset"]) + len(records)  # type: ignore[call-overload]
            if not records or offset >= int(data.get("rowCount", 0)):
                break
            params = {"limit": ga4_page, "offset": offset}
    if writer is not None:
        writer.close()
    return n


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
