"""dlt's documented path: ``rest_api_source`` (declarative REST config) → Parquet files or DuckDB.

``python -m bench.contenders.dlt_rest SHAPE URL OUT GA4_PAGE parquet|duckdb``. The paginators are
dlt's own ``cursor`` (``paging.next.after`` sent back as ``after``) and ``offset`` (``rowCount``
as the total); GA4's positional rows become flat records with a ``map`` processing step (else
dlt would unnest each row's value lists into child tables). Parquet goes to the ``filesystem``
destination with ``loader_file_format="parquet"``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source

from bench.pages import GA4_DIMENSIONS, GA4_METRICS, GA4_PATH

METRICS = [m for m, _ in GA4_METRICS]
KINDS = dict(GA4_METRICS)


def ga4_record(row: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {d: v["value"] for d, v in zip(GA4_DIMENSIONS, row["dimensionValues"])}
    for m, v in zip(METRICS, row["metricValues"]):
        record[m] = int(v["value"]) if KINDS[m] == "TYPE_INTEGER" else float(v["value"])
    return record


def source(shape: str, url: str, ga4_page: int) -> Any:
    if shape == "hubspot":
        resource: dict[str, Any] = {
            "name": "contacts",
            "endpoint": {
                "path": "crm/v3/objects/contacts",
                "params": {"limit": 100},
                "data_selector": "results",
                "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"},
            },
        }
    else:
        resource = {
            "name": "ga4_report",
            "endpoint": {
                "path": GA4_PATH.lstrip("/"),
                "data_selector": "rows",
                "paginator": {
                    "type": "offset",
                    "limit": ga4_page,
                    "offset_param": "offset",
                    "limit_param": "limit",
                    "total_path": "rowCount",
                },
            },
            "processing_steps": [{"map": ga4_record}],
        }
    return rest_api_source({"client": {"base_url": url + "/"}, "resources": [resource]})


def main(shape: str, url: str, out: str, ga4_page: int, dest: str) -> int:
    work = out + ".dlt"
    os.makedirs(work, exist_ok=True)
    if dest == "parquet":
        destination: Any = dlt.destinations.filesystem(bucket_url=out)
        options = {"loader_file_format": "parquet"}
    else:
        destination, options = dlt.destinations.duckdb(out), {}
    pipeline = dlt.pipeline(
        pipeline_name="bench", destination=destination, dataset_name="bench", pipelines_dir=work, progress=None
    )
    info = pipeline.run(source(shape, url, ga4_page), **options)
    info.raise_on_failed_jobs()
    table = "contacts" if shape == "hubspot" else "ga4_report"
    return int(pipeline.last_trace.last_normalize_info.row_counts.get(table, 0))


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
