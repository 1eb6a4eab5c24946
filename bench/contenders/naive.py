"""The naive script: requests + json + a list of flat dicts, ``pa.Table.from_pylist`` at the end.

What most one-off scripts look like: every record is a Python dict until the end, values are
converted in Python, the whole table is built and written at once (so memory grows with it).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import requests

from bench.pages import GA4_METRICS, GA4_PATH, TIMESTAMP_PROPERTIES


def ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def main(shape: str, url: str, out: str, ga4_page: int) -> int:
    session = requests.Session()
    rows: list[dict] = []
    if shape == "hubspot":
        params: dict[str, object] = {"limit": 100}
        while True:
            data = json.loads(session.get(url + "/crm/v3/objects/contacts", params=params, timeout=60).text)
            for record in data["results"]:
                row = {"id": record["id"]}
                for name, value in record["properties"].items():
                    row[name] = ts(value) if name in TIMESTAMP_PROPERTIES else value
                row["createdAt"] = ts(record["createdAt"])
                row["updatedAt"] = ts(record["updatedAt"])
                row["archived"] = record["archived"]
                rows.append(row)
            after = data.get("paging", {}).get("next", {}).get("after")
            if not after:
                break
            params = {"limit": 100, "after": after}
    else:
        offset = 0
        kinds = dict(GA4_METRICS)
        while True:
            response = session.get(url + GA4_PATH, params={"limit": ga4_page, "offset": offset}, timeout=60)
            data = json.loads(response.text)
            dims = [h["name"] for h in data["dimensionHeaders"]]
            mets = [h["name"] for h in data["metricHeaders"]]
            page = data.get("rows", [])
            for record in page:
                row = {d: v["value"] for d, v in zip(dims, record["dimensionValues"])}
                row["date"] = dt.datetime.strptime(row["date"], "%Y%m%d").date()
                for m, v in zip(mets, record["metricValues"]):
                    row[m] = int(v["value"]) if kinds[m] == "TYPE_INTEGER" else float(v["value"])
                rows.append(row)
            offset += len(page)
            if not page or offset >= int(data.get("rowCount", 0)):
                break
    pq.write_table(pa.Table.from_pylist(rows), out, compression="zstd")
    return len(rows)


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
