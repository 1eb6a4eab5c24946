"""The benchmark suite behind ``python -m bench``: see docs/performance.md for what it measures.

For each latency mode, size and page shape: render the pages once, serve them with nginx (through
the latency proxy when a latency is asked for), time a bytes-only curl loop, then run every
contender in a process of its own, ``--rounds`` interleaved rounds (each round starts one
contender later), counting the rows of every output every run. A ratio is a contender's time ÷
the floor's time in the same round; peak RSS is the child's ``ru_maxrss`` from ``os.wait4``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import pages
from bench.server import LatencyProxy, Nginx, ServerError, child_env, curl_loop

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"


def markers(section: str) -> tuple[str, str]:
    return f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"


STREAMS = {"hubspot": "contacts", "ga4": "ga4_report"}


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    label: str
    kind: str  # floor | naive | dlt | kpihub-cli | kpihub-api
    dest: str  # parquet | duckdb
    needs: str | None = None  # a module that must be importable
    #: Configured sources of the benchmark's type (accounts of one platform) synced in one run;
    #: each reads every page, so the output holds ``accounts`` × the records.
    accounts: int = 1
    latency_only: bool = False  # run only in the latency cases (where accounts overlap their waits)

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


CONTENDERS = [
    Contender("floor", "floor (httpx + orjson + column-wise Arrow + ParquetWriter)", "floor", "parquet"),
    Contender("naive", "naive (requests + json + `from_pylist`)", "naive", "parquet"),
    Contender("dlt-parquet", "dlt `rest_api_source` → Parquet", "dlt", "parquet", "dlt"),
    Contender("dlt-duckdb", "dlt `rest_api_source` → DuckDB", "dlt", "duckdb", "dlt"),
    Contender("kpihub-cli-parquet", "`kpihub sync` (CLI) → Parquet directory", "kpihub-cli", "parquet"),
    Contender("kpihub-cli-duckdb", "`kpihub sync` (CLI) → DuckDB file", "kpihub-cli", "duckdb"),
    Contender("kpihub-api-parquet", "`kpihub.sync()` (Python API) → Parquet directory", "kpihub-api", "parquet"),
    Contender("kpihub-api-duckdb", "`kpihub.sync()` (Python API) → DuckDB file", "kpihub-api", "duckdb"),
    Contender(
        "kpihub-api-4-accounts",
        "`kpihub.sync()` 4 accounts of the source at once → Parquet",
        "kpihub-api",
        "parquet",
        accounts=4,
        latency_only=True,
    ),
]
ACCOUNTS_BASELINE = "kpihub-api-parquet"  # what 4 accounts are compared with: one account, same API and destination


def account_ids(accounts: int) -> list[str]:
    return ["bench"] + [f"bench{i}" for i in range(2, accounts + 1)]


def project_file(work: Path, dest: str, out: Path, url: str, ga4_page: int, accounts: int = 1) -> Path:
    uri = f"parquet:///{out}" if dest == "parquet" else f"duckdb:///{out}"
    path = work / f"{out.name}.toml"
    text = f'[project]\ndestination = "{uri}"\n'  # the defaults: sources run side by side up to 8
    for source_id in account_ids(accounts):
        text += f'\n[sources.{source_id}]\ntype = "benchpages"\nbase_url = "{url}"\nga4_page_size = {ga4_page}\n'
    path.write_text(text)
    return path


def command(c: Contender, shape: str, url: str, out: Path, ga4_page: int, work: Path) -> list[str]:
    py = sys.executable
    if c.kind in ("floor", "naive"):
        return [py, "-m", f"bench.contenders.{c.kind}", shape, url, str(out), str(ga4_page)]
    if c.kind == "dlt":
        return [py, "-m", "bench.contenders.dlt_rest", shape, url, str(out), str(ga4_page), c.dest]
    project = project_file(work, c.dest, out, url, ga4_page, c.accounts)
    if c.kind == "kpihub-cli":
        return [py, "-m", "bench.kpihub_cli", "-p", str(project), "sync", "--streams", STREAMS[shape]]
    return [py, "-m", "bench.contenders.kpihub_api", str(project), STREAMS[shape]]


def parquet_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def duckdb_rows(path: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])  # type: ignore[index]


def count_rows(c: Contender, shape: str, out: Path) -> int:
    """Rows in the contender's output table, read back from what it wrote."""
    dlt_table = STREAMS[shape]
    if c.kind in ("floor", "naive"):
        return parquet_rows([out])
    if c.kind == "dlt":
        if c.dest == "parquet":
            return parquet_rows(sorted((out / "bench" / dlt_table).glob("*.parquet")))
        return duckdb_rows(out, f"bench.{dlt_table}")
    tables = [f"{source_id}_{STREAMS[shape]}" for source_id in account_ids(c.accounts)]
    if c.dest == "parquet":
        state = json.loads((out / "_kpihub" / "state.json").read_text())
        # The commit point lists the live files of each table.
        return sum(
            parquet_rows([out / table / Path(f).name for f in state["tables"][table]["files"]]) for table in tables
        )
    return sum(duckdb_rows(out, table) for table in tables)


@dataclasses.dataclass
class Run:
    seconds: float
    rss_mb: float
    code: int
    error: str = ""
    cpu_seconds: float = 0.0


def run_child(argv: list[str], log: Path, timeout: float) -> Run:
    """Run ``argv`` alone; its wall time and peak RSS (``wait4``), killed after ``timeout``.

    It is started by ``bench/launch.py``, a small process of its own: a child's ``ru_maxrss`` starts
    at the high-water mark of the process it execs from, and this suite's grows.
    """
    launcher = [sys.executable, "-m", "bench.launch", str(log), str(timeout), *argv]
    proc = subprocess.Popen(launcher, stdout=subprocess.PIPE, env=child_env(), cwd=REPO)
    try:
        out, _ = proc.communicate()
    except BaseException:  # the suite stopped (Ctrl-C, SIGTERM): the launcher stops its contender
        proc.terminate()
        proc.wait()
        raise
    if proc.returncode != 0:
        return Run(0.0, 0.0, proc.returncode, f"the launcher failed (exit code {proc.returncode})")
    got = json.loads(out)
    code = got["code"]
    error = ""
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()
        error = f"exit code {code}" + (f": {tail[-1][:300]}" if tail else "")
        if code == -signal.SIGKILL:
            error = f"killed after the {timeout:.0f}s timeout"
    return Run(got["seconds"], got["rss_kb"] / 1024, code, error, got.get("cpu_s", 0.0))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        ram = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except OSError:
        ram = 0.0
    versions = {}
    for dist in ("kpihub", "pyarrow", "duckdb", "httpx", "orjson", "requests", "dlt", "pandas"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit.stdout.strip() or "unknown",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def bench_case(
    args: argparse.Namespace, contenders: list[Contender], shape: str, size: int, latency: float, root: Path
) -> dict[str, Any]:
    """Every contender, ``args.rounds`` interleaved rounds, on one shape, size and latency."""
    case: dict[str, Any] = {"shape": shape, "records": size, "latency_ms": round(latency * 1000), "runs": []}
    shape_root = root / f"{shape}-{size}"
    with Nginx(shape_root) as direct:
        started = time.perf_counter()
        paths = pages.render(shape_root, shape, size, base_url=direct, ga4_page=args.ga4_page)
        case["pages"] = len(paths)
        case["render_seconds"] = round(time.perf_counter() - started, 2)
        with tempfile.TemporaryDirectory(prefix="kpihub-bench-") as tmp:
            work = Path(tmp)
            curl_loop(direct, paths, work)  # warm the page cache; untimed
            proxies = []
            if latency:
                # The proxy's own cost: the curl loop through it with no delay vs nginx directly.
                with LatencyProxy(int(direct.rsplit(":", 1)[1]), 0.0) as zero:
                    through, plain = curl_loop(zero, paths, work), curl_loop(direct, paths, work)
                if through is not None and plain is not None:
                    case["proxy_overhead_ms_per_request"] = round((through - plain) / len(paths) * 1000, 3)
                proxies.append(LatencyProxy(int(direct.rsplit(":", 1)[1]), latency))
            url = proxies[0].__enter__() if proxies else direct
            try:
                case["curl_seconds"] = []
                for r in range(args.rounds):
                    curl = curl_loop(url, paths, work)
                    if curl is not None:
                        case["curl_seconds"].append(round(curl, 4))
                    running = [c for c in contenders if latency or not c.latency_only]
                    order = running[r % len(running) :] + running[: r % len(running)]
                    for c in order:
                        case["runs"].append(run_once(args, c, shape, size, url, work, r))
            finally:
                for proxy in proxies:
                    proxy.__exit__(None, None, None)
    return case


def run_once(
    args: argparse.Namespace, c: Contender, shape: str, size: int, url: str, work: Path, r: int
) -> dict[str, Any]:
    out = work / f"{c.name}-r{r}" if c.kind != "floor" and c.kind != "naive" else work / f"{c.name}-r{r}.parquet"
    if c.dest == "duckdb":
        out = work / f"{c.name}-r{r}.duckdb"
    argv = command(c, shape, url, out, args.ga4_page, work)
    result = run_child(argv, work / f"{c.name}-r{r}.log", args.timeout)
    rows = None
    if not result.error:
        try:
            rows = count_rows(c, shape, out)
        except Exception as exc:  # a missing or unreadable output is this run's failure, reported
            result.error = f"output not readable: {type(exc).__name__}: {exc}"
    if rows is not None and rows != size * c.accounts:
        result.error = f"{rows} rows written, {size * c.accounts} expected"
    for path in (out, Path(f"{out}.dlt"), out.with_suffix(".toml")):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    status = "ok" if not result.error else f"FAILED: {result.error}"
    print(
        f"  round {r + 1} {c.name:<19} {result.seconds:8.2f}s {result.cpu_seconds:6.2f} CPU s"
        f" {result.rss_mb:7.0f} MB  rows={rows}  {status}",
        flush=True,
    )
    return {
        "round": r,
        "contender": c.name,
        "seconds": round(result.seconds, 4),
        "rss_mb": round(result.rss_mb, 1),
        "cpu_s": round(result.cpu_seconds, 3),
        "rows": rows,
        "ok": not result.error,
        "error": result.error,
    }


def summarize(case: dict[str, Any], contenders: list[Contender]) -> list[dict[str, Any]]:
    """Per contender: median time, median and range of the per-round ratios, peak RSS."""
    floors = {run["round"]: run["seconds"] for run in case["runs"] if run["contender"] == "floor" and run["ok"]}
    rows = []
    for c in contenders:
        runs = [run for run in case["runs"] if run["contender"] == c.name]
        if not runs:
            continue  # not run in this case (latency only)
        good = [run for run in runs if run["ok"]]
        ratios = [run["seconds"] / floors[run["round"]] for run in good if run["round"] in floors]
        seconds = statistics.median(run["seconds"] for run in good) if good else None
        rows.append(
            {
                "contender": c.name,
                "label": c.label,
                "ok": len(good) == len(runs) and bool(runs),
                "seconds": seconds,
                "records_per_s": case["records"] / seconds if seconds else None,
                "ratio": statistics.median(ratios) if ratios else None,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "rss_mb": max(run["rss_mb"] for run in good) if good else None,
                "cpu_s": statistics.median(run["cpu_s"] for run in good) if good and "cpu_s" in good[0] else None,
                "rounds": len(good),
            }
        )
    return rows


def accounts_ratio(case: dict[str, Any]) -> float | None:
    """Median per-round time of the 4-account run ÷ the one-account run of the same round."""
    by = {(run["contender"], run["round"]): run for run in case["runs"] if run["ok"]}
    ratios = [
        run["seconds"] / by[(ACCOUNTS_BASELINE, round_)]["seconds"]
        for (name, round_), run in by.items()
        if name == "kpihub-api-4-accounts" and (ACCOUNTS_BASELINE, round_) in by
    ]
    return statistics.median(ratios) if ratios else None


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    v = m["versions"]
    lines = [
        f"Measured {m['date']} at commit `{m['commit']}` with `{report['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; Python {m['python']}, "
        f"pyarrow {v['pyarrow']}, duckdb {v['duckdb']}, httpx {v['httpx']}, orjson {v['orjson']}, "
        f"requests {v['requests']}, dlt {v['dlt']}, nginx {report.get('nginx', '?')}, "
        f"pandas {v.get('pandas', '?')} (pyarrow imports it at its first conversion of Python values when it "
        "is installed: 55 MB and 0.3 s more for every contender). "
        f"{report['rounds']} interleaved round(s) per case; × floor is the median of the per-round ratios "
        "(range in brackets); CPU s is the median user + system time of all its threads (`wait4`); "
        "peak RSS is the largest of the rounds.",
        "",
    ]
    for case in report["cases"]:
        lat = f", {case['latency_ms']} ms latency" if case["latency_ms"] else ", no added latency"
        lines += [
            f"#### {case['shape']} — {case['records']:,} records in {case['pages']:,} pages{lat}",
            "",
            "| contender | × floor time | seconds | CPU s | records/s | peak RSS |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in case["summary"]:
            if row["ratio"] is None:
                note = "failed" if row["rounds"] == 0 and row.get("ran", True) else "—"
                lines.append(f"| {row['label']} | {note} | | | | |")
                continue
            spread = f" [{row['ratio_min']:.2f}–{row['ratio_max']:.2f}]" if row["rounds"] > 1 else ""
            flag = "" if row["ok"] else " (some rounds failed)"
            cpu = f"{row['cpu_s']:.2f}" if row.get("cpu_s") is not None else "—"
            lines.append(
                f"| {row['label']}{flag} | {row['ratio']:.2f}{spread} | {row['seconds']:.2f} | {cpu} | "
                f"{row['records_per_s']:,.0f} | {row['rss_mb']:.0f} MB |"
            )
        if case.get("curl_seconds"):
            curl = statistics.median(case["curl_seconds"])
            floor = next((r["seconds"] for r in case["summary"] if r["contender"] == "floor"), None)
            ratio = f"{curl / floor:.2f}" if floor else "—"
            lines.append(
                f"| *transport ceiling: one curl process, bytes only* | {ratio} | {curl:.2f} | | "
                f"{case['records'] / curl:,.0f} | |"
            )
        accounts = accounts_ratio(case)
        if accounts is not None:
            lines += ["", f"4 accounts at once ÷ one account alone (paired per round, median): {accounts:.2f}."]
        if "proxy_overhead_ms_per_request" in case:
            lines += ["", f"The latency proxy's own cost: {case['proxy_overhead_ms_per_request']:.2f} ms a request."]
        for name in report.get("skipped", []):
            lines += ["", f"Not run: {name}."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(path: Path, table: str, section: str) -> None:
    """Put ``table`` between the section's markers in ``path`` (appended when they are missing)."""
    start, end = markers(section)
    text = path.read_text() if path.exists() else "# Performance\n"
    if start not in text or end not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    # Replaced whole (a run stopped while writing must not leave the page empty).
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{head}{start}\n{table}{end}{tail}")
    tmp.replace(path)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes for development and the test suite")
    p.add_argument(
        "--render", type=Path, metavar="JSON", help="write the table of an earlier run's --json file, run nothing"
    )
    p.add_argument("--sizes", type=int, nargs="+", help="records per case (default 200000 2000000)")
    p.add_argument("--latency-sizes", type=int, nargs="+", help="records per case with latency (default: --sizes)")
    p.add_argument("--shapes", nargs="+", choices=["hubspot", "ga4"], default=["hubspot", "ga4"])
    p.add_argument("--latency", type=float, nargs="+", help="added ms per response (default 0 100; 0 = none)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    p.add_argument("--contenders", nargs="+", choices=[c.name for c in CONTENDERS], help="default: all")
    p.add_argument("--ga4-page", type=int, help="GA4 rows per page (default 10000, GA4's default limit)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a contender is killed")
    p.add_argument("--pages-dir", type=Path, help="keep rendered pages here (reused when they match)")
    p.add_argument("--json", type=Path, help="raw numbers (default bench/results.json; --quick: none)")
    p.add_argument("--docs", type=Path, help="file whose results markers get the table (default docs/performance.md)")
    p.add_argument("--section", default="results", help="which results markers of --docs (default results)")
    p.add_argument("--no-docs", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    args.sizes = args.sizes or ([1_000] if args.quick else [200_000, 2_000_000])
    args.latency_sizes = args.latency_sizes or args.sizes
    args.latency = args.latency if args.latency is not None else [0.0, 100.0]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.ga4_page = args.ga4_page or (250 if args.quick else 10_000)
    if args.quick and args.docs is None:
        args.no_docs = True  # a development run never overwrites the published numbers
    if args.json is None and not args.quick:
        args.json = REPO / "bench" / "results.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        table = markdown(json.loads(args.render.read_text()))
        print(table)
        write_docs(args.docs or DOCS, table, args.section)
        return 0
    # SIGTERM unwinds like Ctrl-C, so nginx, the proxy and a running contender are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    wanted = [c for c in CONTENDERS if args.contenders is None or c.name in args.contenders or c.name == "floor"]
    contenders = [c for c in wanted if c.available()]
    missing = [c for c in wanted if not c.available()]
    skipped = [f"{c.label} ({c.needs} is not installed: pip install -e '.[bench]')" for c in missing]
    for line in skipped:
        print(f"skipped: {line}", flush=True)
    report: dict[str, Any] = {
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "rounds": args.rounds,
        "skipped": skipped,
        "cases": [],
    }
    root_tmp = None if args.pages_dir else tempfile.mkdtemp(prefix="kpihub-bench-pages-")
    root = args.pages_dir or Path(root_tmp)  # type: ignore[arg-type]
    root.mkdir(parents=True, exist_ok=True)
    try:
        report["nginx"] = Nginx(root).version()
        for latency_ms in args.latency:
            for size in args.latency_sizes if latency_ms else args.sizes:
                for shape in args.shapes:
                    print(f"{shape}, {size:,} records, {latency_ms:g} ms latency:", flush=True)
                    case = bench_case(args, contenders, shape, size, latency_ms / 1000, root)
                    case["summary"] = summarize(case, contenders)
                    report["cases"].append(case)
                    if args.json:  # after every case: a run stopped later keeps what it measured
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(report, indent=1) + "\n")
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        if root_tmp:
            shutil.rmtree(root_tmp, ignore_errors=True)
    table = markdown(report)
    print()
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if not args.no_docs:
        write_docs(args.docs or DOCS, table, args.section)
    failed = [(case["shape"], run) for case in report["cases"] for run in case["runs"] if not run["ok"]]
    for shape, run in failed:
        print(f"FAILED: {shape} {run['contender']} round {run['round'] + 1}: {run['error']}", file=sys.stderr)
    return 1 if failed else 0
