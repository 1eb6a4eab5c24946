"""Sync throughput and peak memory: kpihub vs a hand-written floor, same fake server, same run.

    python bench/sync_throughput.py --contacts 50000 500000

For each size: a fake HubSpot (kpihub_hubspot.fake) runs in its own process on
127.0.0.1; one warm-up pass renders every record once; then each variant runs
in a fresh subprocess, reading every contact through the CRM search API
(windows restarted at the 10,000-result cap) and writing it:

* ``floor``: a plain loop — httpx + orjson + pyarrow, column-wise
  ``pa.array(records, type=struct)`` per page, cast, ParquetWriter. No retries,
  no state, no canonical mapping.
* ``kpihub-parquet`` / ``kpihub-duckdb``: ``kpihub.Pipeline.sync`` of the
  contacts stream (raw table + canonical crm_contacts + state).

Reported: records/s, ratio to the floor measured in the same run, and the
peak RSS of each subprocess (``wait4`` rusage).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

FLOOR = textwrap.dedent(
    """
    import sys, httpx, orjson, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq, datetime as dt
    url, out = sys.argv[1], sys.argv[2]
    stages = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
    # The same properties kpihub's contacts stream asks for, so both read the same bytes.
    props = ["hs_object_id", "email", "lifecyclestage", "hs_analytics_source", "associatedcompanyid", "createdate",
             "lastmodifieddate"] + [f"hs_lifecyclestage_{s}_date" for s in stages]
    ts_props = {"createdate", "lastmodifieddate"} | {f"hs_lifecyclestage_{s}_date" for s in stages}
    wire = pa.struct([("id", pa.string()), ("properties", pa.struct([(p, pa.string()) for p in props])),
                      ("createdAt", pa.string()), ("updatedAt", pa.string()), ("archived", pa.bool_())])
    client = httpx.Client(base_url=url, headers={"Authorization": "Bearer pat-na1-fake-token"})
    writer, n, low = None, 0, None
    high = str(int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000))
    while True:
        after, last, capped = "0", None, False
        while True:
            filters = [{"propertyName": "lastmodifieddate", "operator": "LT", "value": high}]
            if low:
                filters.append({"propertyName": "lastmodifieddate", "operator": "GTE", "value": low})
            body = {"filterGroups": [{"filters": filters}], "properties": props, "limit": 200, "after": after,
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]}
            data = orjson.loads(client.post("/crm/v3/objects/contacts/search", content=orjson.dumps(body),
                                            headers={"Content-Type": "application/json"}).content)
            records = data["results"]
            if records:
                arr = pa.array(records, type=wire)
                cols = {"id": arr.field("id")}
                p = arr.field("properties")
                for name in props:
                    col = p.field(name)
                    cols[name] = pc.cast(col, pa.timestamp("us", "UTC")) if name in ts_props else col
                batch = pa.RecordBatch.from_pydict(cols)
                if writer is None:
                    writer = pq.ParquetWriter(out, batch.schema, compression="zstd")
                writer.write_batch(batch)
                n += len(records)
                last = records[-1]
            nxt = (data.get("paging") or {}).get("next", {}).get("after")
            if not nxt:
                break
            if int(nxt) >= 10000:
                capped = True
                break
            after = nxt
        if not capped:
            break
        iso = last["properties"]["lastmodifieddate"].replace("Z", "+00:00")
        low = str(int(dt.datetime.fromisoformat(iso).timestamp() * 1000))
    writer.close()
    print(n)
    """
)

KPIHUB = textwrap.dedent(
    """
    import sys, kpihub
    from kpihub.config import Project, ProjectSettings
    url, dest = sys.argv[1], sys.argv[2]
    project = Project(path=None, settings=ProjectSettings(destination=dest), sources={"hubspot": {
        "base_url": url, "token": "pat-na1-fake-token", "requests_per_second": None, "search_lag_seconds": 0}})
    result = kpihub.Pipeline(project).sync(streams=["contacts"])
    result.raise_for_errors()
    print(result.records)
    """
)


def run(code: str, *args: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, records) of ``python -c code args`` in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark variant failed with exit code {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, int(out.strip().splitlines()[-1])


def start_fake(contacts: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpihub_hubspot.fake", "--contacts", str(contacts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"fake server did not start: {url!r}")
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, nargs="+", default=[50_000, 500_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (best is reported)")
    args = parser.parse_args()
    print(f"{'contacts':>9} {'variant':<15} {'seconds':>8} {'records/s':>10} {'vs floor':>9} {'peak MiB':>9}")
    for n in args.contacts:
        server, url = start_fake(n)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                # Render every record once in the fake (it caches), so neither variant waits on it.
                run(FLOOR, url, os.path.join(tmp, "warmup.parquet"))
                results = {}
                variants = {
                    "floor": (FLOOR, lambda i: os.path.join(tmp, f"floor{i}.parquet")),
                    "kpihub-parquet": (KPIHUB, lambda i: f"parquet:///{tmp}/pq{i}"),
                    "kpihub-duckdb": (KPIHUB, lambda i: f"duckdb:///{tmp}/db{i}.duckdb"),
                }
                for name, (code, target) in variants.items():
                    runs = [run(code, url, target(i)) for i in range(args.repeat)]
                    results[name] = min(runs)
                floor_rate = n / results["floor"][0]
                for name, (seconds, peak, records) in results.items():
                    rate = records / seconds
                    print(f"{n:>9,} {name:<15} {seconds:>8.2f} {rate:>10,.0f} {rate / floor_rate:>8.2f}x {peak:>9.0f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
