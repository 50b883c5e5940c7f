"""Transform DAG benchmark: a full rebuild through `pulse_transform` in each cosmos mode vs `pulse build`.

    .venv/bin/python bench/transform/run.py [--customers 2000] [--days 60] [--modes local,watcher]

Simulates demo-sized data (`pulse demo`'s defaults: 2,000 people over 60 days) into a fresh database and
times, in one run, first the baseline, `pulse build --full-refresh` (the CLI, a process of its own),
then one run of the `pulse_transform` DAG per mode with `dag.test()` (a process of its own, Airflow's
metadata in SQLite; the DAG file is parsed before the clock starts). Before each, the schemas dbt writes
are dropped, so every run is a full rebuild of the same data. A mode is
`<PULSE_DBT_EXECUTION_MODE>/<PULSE_DBT_INVOCATION_MODE>`: `local/dbt_runner` (a dbt build per model
task, dbt in the task's process: cosmos' default when dbt is importable), `local/subprocess` (the same,
a `dbt` command per task), `watcher/dbt_runner` (one dbt build, each model's tasks watching it) and
`watcher/subprocess`. Prints each wall time, its ratio to the baseline and the tasks the DAG showed.

`dag.test()` runs tasks one at a time, as a scheduler with one free slot would; `--scheduler` instead
runs the DAG through a real scheduler, LocalExecutor and triggerer (pulse.local_airflow), tasks in
parallel, timing the run from its start to its end. The watcher mode needs the latter: under
`dag.test()` a model's task can start before the task running dbt and wait for it forever.

Uses its own database on the server in PULSE_DATABASE_URL (or the embedded one) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from pulse import db, embedded
from pulse.config import PROJECT_ROOT, Settings
from pulse.events.ingest import ingest_path
from pulse.events.simulator import simulate
from pulse.transform import dbt_manifest

MODES = ["local/dbt_runner", "local/subprocess", "watcher/dbt_runner", "watcher/subprocess"]
BIN = Path(sys.executable).parent


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(
        make_url(url).set(database="postgres").render_as_string(hide_password=False), autocommit=True
    )


def dbt_schemas(settings: Settings) -> list[str]:
    """The schemas the production build writes (from the manifest: models, snapshots, seeds)."""
    nodes = json.loads(dbt_manifest(settings).read_text())["nodes"].values()
    return sorted(
        {
            n["schema"]
            for n in nodes
            if n["resource_type"] in ("model", "snapshot", "seed") and "audiences" not in n["tags"]
        }
    )


def drop_dbt_schemas(url: str, schemas: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.execute("checkpoint")


def child(logical_date: str) -> None:
    """In a process of its own: parse the DAG, then time one `dag.test()` of it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "pulse_transform.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["pulse_transform"]
    started = time.perf_counter()
    run = dag.test(logical_date=datetime.fromisoformat(logical_date))
    wall = time.perf_counter() - started
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    print(json.dumps({"wall": wall, "state": run.state, "states": states}))


def time_mode(mode: str, env: dict[str, str], logical_date: datetime) -> dict:
    execution, invocation = mode.split("/")
    env = {**env, "PULSE_DBT_EXECUTION_MODE": execution, "PULSE_DBT_INVOCATION_MODE": invocation}
    done = subprocess.run(
        [sys.executable, __file__, "--child", logical_date.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"wall"')]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{mode}: dag.test failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return json.loads(lines[-1])


def time_mode_scheduled(mode: str, settings: Settings, server: str, logical_date: datetime) -> dict:
    """One run of the DAG through a scheduler, LocalExecutor and triggerer started for this mode; the
    wall time is the run's own (start to end), so starting Airflow is not counted."""
    from pulse.local_airflow import cluster_environment, free_port, start_cluster

    execution, invocation = mode.split("/")
    metadata = f"pulse_bench_transform_meta_{uuid.uuid4().hex[:8]}"
    with _admin(server) as conn:
        conn.execute(f'create database "{metadata}"')
    env = cluster_environment(
        settings,
        metadata_url=make_url(server)
        .set(drivername="postgresql+psycopg2", database=metadata)
        .render_as_string(False),
        port=free_port(),
    )
    env.update({"PULSE_DBT_EXECUTION_MODE": execution, "PULSE_DBT_INVOCATION_MODE": invocation})
    env["AIRFLOW_HOME"] = str(Path(env["AIRFLOW_HOME"]) / execution / invocation)
    cluster = start_cluster(env)
    try:
        api = cluster.api()
        api.wait_for_dags(["pulse_transform"])
        run_id = api.trigger("pulse_transform", logical_date)
        [run] = [
            r for r in api.wait_for_runs("pulse_transform", 1, timeout=7200) if r["dag_run_id"] == run_id
        ]
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances("pulse_transform", run_id)}
    finally:
        cluster.stop()
        with _admin(server) as conn:
            conn.execute(f'drop database if exists "{metadata}" with (force)')
    wall = (
        datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
    ).total_seconds()
    return {"wall": wall, "state": run["state"], "states": states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    parser.add_argument(
        "--scheduler",
        action="store_true",
        help="run the DAG through a scheduler (LocalExecutor), not dag.test()",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    server = os.environ.get("PULSE_DATABASE_URL") or embedded.start(PROJECT_ROOT / ".pulse")
    name = f"pulse_bench_transform_{uuid.uuid4().hex[:8]}"
    with _admin(server) as conn:
        conn.execute(f'create database "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="pulse-bench-transform-"))
    os.environ.update(
        {
            "PULSE_DATABASE_URL": url,
            "PULSE_HOME": str(work / "home"),
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow' / 'airflow.db'}",
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    settings = Settings()
    try:
        db.create_schemas(settings)
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        print(f"simulating {args.customers:,} customers x {args.days} days ...", flush=True)
        sim = simulate(work / "sim", customers=args.customers, days=args.days, seed=args.seed, end=end)
        loaded = ingest_path(sim.events_path, settings)
        print(f"  loaded {loaded.inserted:,} events", flush=True)
        schemas = dbt_schemas(settings)
        migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stderr[-3000:]

        # Warm-up: a first build fills the server's caches for both sides alike.
        subprocess.run([str(BIN / "pulse"), "build", "--full-refresh"], check=True, capture_output=True)
        drop_dbt_schemas(url, schemas)
        started = time.perf_counter()
        subprocess.run([str(BIN / "pulse"), "build", "--full-refresh"], check=True, capture_output=True)
        baseline = time.perf_counter() - started
        print(f"pulse build --full-refresh (from empty schemas): {baseline:.1f} s", flush=True)

        results = {}
        for n, mode in enumerate(args.modes.split(",")):
            drop_dbt_schemas(url, schemas)
            logical_date = end + timedelta(hours=1 + n)
            if args.scheduler:
                result = time_mode_scheduled(mode, settings, server, logical_date)
            else:
                result = time_mode(mode, dict(os.environ), logical_date)
            states = result["states"]
            failed = {t: s for t, s in states.items() if s != "success"}
            dbt_tasks = [t for t in states if t.startswith("dbt.")]
            models = {t.split(".")[1].removesuffix("_model_build") for t in dbt_tasks}
            results[mode] = result["wall"]
            print(
                f"pulse_transform {mode}: {result['wall']:.1f} s ({result['wall'] / baseline:.2f} x pulse build), "
                f"{result['state']}, {len(dbt_tasks)} dbt tasks for {len(models)} nodes"
                + (f"; not successful: {failed}" if failed else ""),
                flush=True,
            )
        print(json.dumps({"baseline": baseline, **results}))
    finally:
        with _admin(server) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
