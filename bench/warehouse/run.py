"""Warehouse benchmark: a full `dbt build` on ~1M events, then an incremental one after 1% new events.

    .venv/bin/python bench/warehouse/run.py [--customers 44000] [--days 90] [--activity 0.055]

The workload the issue names: about 1M events of about 20k customers over 90 days. Of the simulated
population about 44% ever sign in (the rest only browse anonymously, or never visit), so 44,000 simulated
people at a visit-rate scale of 0.055 give about 19,300 customers and 990k events (the earlier default,
20,000 people at 0.14, gave 13,400 customers with 83 events each).
Simulates `--customers` over `--days` days and loads the days before the last one; times a full `dbt
build --full-refresh` of the warehouse models and their data tests; loads the last day's first events,
as many as 1% of those loaded (`--increment`; the morning of a day that holds about 1-2% of them), and
times a plain `dbt build`, which processes them incrementally. The increment starts a new day, so, as in
the daily run of a daily pipeline, the incremental build also writes a new snapshot for every customer.
Both are production builds through `pulse.transform.run_dbt` (dbt in this process, as `pulse build`
runs it), the same command apart from `--full-refresh`; dbt is imported and the project parsed before
either is timed. dbt's unit tests are left out of both, as in `pulse build` and the transform DAG (they
run in CI; see pulse.transform). Between the two builds the database is vacuumed, analyzed and
checkpointed, as the server would have done in the day between two daily builds (right after a full
build autovacuum is still busy with the new million-row tables and the checkpointer with its dirty
pages, both competing with the next build for the two cores).
Prints both times and their ratio (goal: incremental <= 0.1 x full), and the same split for model time
only; then times a third build with nothing new loaded, which is what dbt costs on its own (parsing,
every model and test node), the floor under any incremental build. The history's `loaded_at` is set to
the morning after each event's day, as a daily pipeline would have loaded it; loaded in one go, every
event would carry the same `loaded_at` and the `lookback` var (which re-reads the last hours of loads,
to catch transactions that committed late) would re-read the whole history.

Uses its own database on the server in PULSE_DATABASE_URL (or the embedded one) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

from pulse import db, embedded  # noqa: E402
from pulse.config import PROJECT_ROOT, Settings  # noqa: E402
from pulse.events.ingest import ingest_path  # noqa: E402
from pulse.events.simulator import simulate  # noqa: E402
from pulse.transform import PRODUCTION_EXCLUDES, run_dbt  # noqa: E402

WAREHOUSE_ONLY = ["--exclude", "path:models/audiences", "path:models/staging/ml", *PRODUCTION_EXCLUDES]


def timed_build(settings: Settings, *extra: str) -> tuple[float, float, float]:
    """Wall time of `dbt build`, and the summed execution time of its models and of its tests."""
    started = time.perf_counter()
    results = run_dbt(["build", *WAREHOUSE_ONLY, *extra], settings)
    wall = time.perf_counter() - started
    models = sum(r.execution_time for r in results if r.unique_id.startswith("model."))
    tests = sum(r.execution_time for r in results if r.unique_id.startswith(("test.", "unit_test.")))
    slowest = sorted(results, key=lambda r: -r.execution_time)[:10]
    kinds = sorted({r.unique_id.split(".")[0] for r in results})
    count = ", ".join(f"{sum(r.unique_id.startswith(k + '.') for r in results)} {k}s" for k in kinds)
    print(
        f"    {len(results)} nodes ({count}); slowest: "
        + ", ".join(f"{r.unique_id.split('.')[-1]} {r.execution_time:.1f}s" for r in slowest)
    )
    return wall, models, tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=44_000, help="simulated people")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--activity", type=float, default=0.055, help="visit-rate scale (about 51 events a customer)"
    )
    parser.add_argument(
        "--increment", type=float, default=0.01, help="share of the events loaded after the full build"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--threads", type=int, help="dbt threads for both builds (default: profiles.yml)")
    args = parser.parse_args()

    server = os.environ.get("PULSE_DATABASE_URL") or embedded.start(PROJECT_ROOT / ".pulse")
    name = f"pulse_bench_warehouse_{uuid.uuid4().hex[:8]}"
    with harness.admin(server) as conn:
        conn.execute(f'create database "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="pulse-bench-warehouse-"))
    os.environ["PULSE_DATABASE_URL"] = url
    os.environ["PULSE_HOME"] = str(work / "home")
    settings = Settings()
    try:
        db.create_schemas(settings)
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        print(f"simulating {args.customers:,} customers x {args.days} days ...", flush=True)
        sim = simulate(
            work / "sim",
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            end=end,
            activity=args.activity,
        )
        base, increment = work / "base.jsonl", work / "increment.jsonl"
        n_base, n_increment = harness.split_at_last_day(sim.events_path, args.increment, base, increment)
        ingest_path(base, settings)
        harness.backdate_loads(url)  # each day's events loaded the next morning, as a daily pipeline would
        run_dbt(["parse"], settings)  # dbt imported and the project parsed before either timed build
        print(f"loaded {n_base:,} events; building from scratch ...", flush=True)
        threads = ["--threads", str(args.threads)] if args.threads else []
        full, full_models, full_tests = timed_build(settings, "--full-refresh", *threads)
        print(
            f"  full build        {full:7.1f} s  (models {full_models:6.1f} s, tests {full_tests:6.1f} s)",
            flush=True,
        )
        # What the server does in the day between two daily builds: autovacuum (right after the full
        # build it would still be vacuuming the new million-row tables) and a checkpoint (the full
        # build's gigabytes of dirty pages would otherwise be written out during the next one).
        harness.settle(url)

        ingest_path(increment, settings)  # no analyze: the planner reads new extremes from the index
        share = n_increment / n_base
        print(
            f"loaded {n_increment:,} new events ({share:.1%} of the base); building incrementally ...",
            flush=True,
        )
        inc, inc_models, inc_tests = timed_build(settings, *threads)
        print(f"  incremental build {inc:7.1f} s  (models {inc_models:6.1f} s, tests {inc_tests:6.1f} s)")
        print(
            "nothing new loaded; building again (dbt's fixed cost: start-up and every node) ...", flush=True
        )
        idle, _, _ = timed_build(settings, *threads)
        print(f"  no-op build       {idle:7.1f} s")

        with psycopg.connect(url) as conn:
            snapshots = conn.execute("select count(*) from marts.customer_features").fetchone()[0]
            customers = conn.execute("select count(*) from marts.customers").fetchone()[0]
        print()
        print(
            f"events: {n_base:,} base + {n_increment:,} new; customers: {customers:,}; feature snapshots: {snapshots:,}"
        )
        print(f"full build:        {full:.1f} s")
        print(f"incremental build: {inc:.1f} s")
        print(f"ratio (incremental / full): {inc / full:.3f}   goal <= 0.1")
        print(
            f"no-op build:       {idle:.1f} s (ratio {idle / full:.3f}: the floor of any incremental build)"
        )
        print(
            f"models only:       full {full_models:.1f} s, incremental {inc_models:.1f} s, ratio {inc_models / full_models:.3f}"
        )
    finally:
        db._engine_for(url).dispose()
        if not args.keep:
            with harness.admin(server) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')
        else:
            print(f"kept database {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
