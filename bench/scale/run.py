"""Scaling curve: every batch step of Pulse at 1M, 3M (and 10M) events, with time and peak memory.

    .venv/bin/python bench/scale/run.py [--sizes 1m,3m] [--json results.jsonl]
    .venv/bin/python bench/scale/run.py --table results.jsonl     # the table of earlier runs

Each size is the warehouse benchmark's workload scaled: 44,000 simulated people per million events at a
visit-rate scale of 0.055 (about 19,300 customers who sign in and 51 events each) over 90 days, so 1M,
3M and 10M events hold about 20k, 60k and 200k customers. For each size, in a new database:

- first run: `pulse ingest` of the days before the last one (their `loaded_at` then set to the morning
  after each day, as a daily pipeline would have loaded them), `pulse build --full-refresh`,
  `pulse features`, `pulse train`, `pulse score`, `pulse audiences`;
- daily run, after the server's between-days work (vacuum, analyze, checkpoint): `pulse ingest` of the
  last day's first events (1% of the history, `--increment`), `pulse build` (incremental),
  `pulse features`, `pulse score`, `pulse audiences`.

Every step is the CLI verb a user runs, in its own process, timed from start to exit (Python start-up
and imports included), with the CPU seconds it and the PostgreSQL backends serving it used (on a
shared machine wall time also grows with the others' load; CPU time only with the work). Peak memory
is sampled every 0.25 s: "client" is the summed resident memory (RSS) of the `pulse` process and its
children (dbt, Feast and scikit-learn all run in it); "server" is the summed private memory (USS,
shared_buffers left out) of the PostgreSQL backends serving the benchmark database. The table ends with
each step's growth exponent between sizes, k in time ~ events^k, of wall and of CPU time (1 is linear;
below 1, fixed costs still dominate; above about 1.15, worse than linear).

Uses PULSE_DATABASE_URL's server (or the embedded one); each size's database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

from pulse.events.simulator import simulate  # noqa: E402

PEOPLE_PER_MILLION = 44_000  # at activity 0.055: about 1M events and 19,300 customers (bench/warehouse)
ACTIVITY = 0.055
FIRST = [
    ("ingest", ["ingest", "{base}"]),
    ("build --full-refresh", ["build", "--full-refresh"]),
    ("features", ["features"]),
    ("train", ["train"]),
    ("score", ["score"]),
    ("audiences", ["audiences"]),
]
DAILY = [
    ("ingest", ["ingest", "{increment}"]),
    ("build (incremental)", ["build"]),
    ("features", ["features"]),
    ("score", ["score"]),
    ("audiences", ["audiences"]),
]


def parse_size(text: str) -> float:
    """`1m`, `3M`, `0.5m` -> millions of events."""
    return float(text.lower().removesuffix("m"))


def counts(url: str) -> dict[str, int]:
    tables = {
        "events": "raw.events",
        "customers": "marts.customers",
        "snapshots": "marts.customer_features",
        "scores": "ml.scores",
        "members": "audiences.audience_members",
    }
    with psycopg.connect(url) as conn:
        return {
            key: conn.execute(f"select count(*) from {table}").fetchone()[0] for key, table in tables.items()
        }


def run_size(millions: float, args: argparse.Namespace) -> dict:
    people = round(millions * PEOPLE_PER_MILLION)
    work = Path(tempfile.mkdtemp(prefix="pulse-bench-scale-"))
    result: dict = {"size": f"{millions:g}M", "people": people, "steps": []}
    with harness.fresh_database("pulse_bench_scale", keep=args.keep) as url:
        env = {"PULSE_DATABASE_URL": url, "PULSE_HOME": str(work / "home")}
        harness.measure(harness.pulse("up"), url, env)
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        print(f"[{result['size']}] simulating {people:,} people x 90 days ...", flush=True)
        started = time.perf_counter()
        sim = simulate(work / "sim", customers=people, days=90, seed=args.seed, end=end, activity=ACTIVITY)
        files = {"base": work / "base.jsonl", "increment": work / "increment.jsonl"}
        n_base, n_increment = harness.split_at_last_day(
            sim.events_path, args.increment, files["base"], files["increment"]
        )
        sim.events_path.unlink()
        result["simulate_s"] = time.perf_counter() - started
        result["events"], result["increment"] = n_base, n_increment
        print(
            f"[{result['size']}] {n_base:,} events + {n_increment:,} for the daily run "
            f"(simulated in {result['simulate_s']:.0f} s)",
            flush=True,
        )
        for phase, steps in (("first", FIRST), ("daily", DAILY)):
            for name, verb in steps:
                command = harness.pulse(*[part.format(**files) for part in verb])
                measured = harness.measure(command, url, env)
                row = {
                    "phase": phase,
                    "step": name,
                    "seconds": round(measured.seconds, 2),
                    "client_mb": round(measured.client_peak_mb),
                    "server_mb": round(measured.server_peak_mb),
                    "load": round(measured.load, 1),
                    "cpu_s": round(measured.client_cpu_s + measured.server_cpu_s, 1),
                }
                result["steps"].append(row)
                print(
                    f"[{result['size']}] {phase:5} {name:22} {row['seconds']:8.1f} s  "
                    f"cpu {row['cpu_s']:7.1f} s  client {row['client_mb']:6,} MB  "
                    f"server {row['server_mb']:6,} MB  load {row['load']:.1f}",
                    flush=True,
                )
                if phase == "first" and name == "ingest":
                    harness.backdate_loads(url)
            if phase == "first":
                harness.settle(url)
        result["counts"] = counts(url)
    for path in files.values():
        path.unlink(missing_ok=True)
    return result


def exponent(t_small: float, t_large: float, n_small: int, n_large: int) -> float:
    return math.log(t_large / t_small) / math.log(n_large / n_small)


def print_table(results: list[dict]) -> None:
    results = sorted(results, key=lambda r: r["events"])
    sizes = [r["size"] for r in results]
    print()
    for r in results:
        c = r.get("counts", {})
        print(
            f"{r['size']}: {r['events']:,} events (+{r['increment']:,} daily), "
            f"{c.get('customers', 0):,} customers, {c.get('snapshots', 0):,} feature snapshots, "
            f"{c.get('scores', 0):,} score rows, {c.get('members', 0):,} audience members"
            + (
                f"; mean load {sum(s['load'] for s in r['steps']) / len(r['steps']):.1f}"
                if "load" in r["steps"][0]
                else ""
            )
        )
    # Per size: wall s, CPU s (client + server), peak client / server MB; then k of wall and CPU time.
    header = ["phase", "step"]
    header += [f"{s} wall s / CPU s / client MB / server MB" for s in sizes]
    pairs = list(zip(results, results[1:], strict=False))
    header += [f"k {a['size']}->{b['size']} wall / CPU" for a, b in pairs]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    keys = [(row["phase"], row["step"]) for row in results[0]["steps"]]
    for key in keys:
        rows = [next((s for s in r["steps"] if (s["phase"], s["step"]) == key), None) for r in results]
        cells = list(key)
        for row in rows:
            cpu = f"{row['cpu_s']:.0f}" if row and "cpu_s" in row else "-"
            cells.append(
                f"{row['seconds']:.0f} / {cpu} / {row['client_mb']:,} / {row['server_mb']:,}" if row else "-"
            )
        for i in range(len(rows) - 1):
            a, b = rows[i], rows[i + 1]
            n_small, n_large = results[i]["events"], results[i + 1]["events"]
            if a is None or b is None:
                cells.append("-")
                continue
            wall = exponent(a["seconds"], b["seconds"], n_small, n_large)
            cpu = (
                f"{exponent(a['cpu_s'], b['cpu_s'], n_small, n_large):.2f}"
                if "cpu_s" in a and "cpu_s" in b
                else "-"
            )
            cells.append(f"{wall:.2f} / {cpu}")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,3m", help="millions of events, comma-separated (1m,3m,10m)")
    parser.add_argument("--increment", type=float, default=0.01, help="the daily run's share of the history")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append each size's results to this JSON-lines file")
    parser.add_argument("--table", type=Path, help="only print the table of a JSON-lines file")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    args = parser.parse_args()
    if args.table:
        print_table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()])
        return
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    results = []
    for size in args.sizes.split(","):
        result = run_size(parse_size(size), args)
        results.append(result)
        if args.json:
            with args.json.open("a") as out:
                out.write(json.dumps(result) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
