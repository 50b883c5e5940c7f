"""Daily-cycle benchmark: one simulated day for 20,000 customers on 90 days of history, through the CLI
verbs and through the Airflow DAG chain, on the same data in the same run.

    .venv/bin/python bench/pipeline/run.py [--people 44000] [--days 90] [--runs 1]

Simulates `--people` over `--days` + 1 days at the warehouse benchmark's visit-rate scale (44,000 people
give about 19,300 customers who sign in and 1M events over 90 days). Setup, not timed: a database with
the history loaded (`loaded_at` the morning after each day, as a daily pipeline would have loaded it),
built (`pulse build --full-refresh`) and its features materialised, then vacuumed, analyzed and
checkpointed (no model yet: both paths train the first champions). Each run copies that database twice
(`create database ... template`, with a copy of PULSE_HOME each) and processes the last day's events,
first through Airflow (when its chain fails, the run stops early), then through the CLI:

- CLI: `pulse ingest DAY.jsonl`, `pulse build`, `pulse features`, `pulse train`, `pulse score`,
  `pulse audiences --export`, `pulse report`; each verb its own process, timed from start to exit;
- Airflow (`--path scheduler`, the default): the day's file landed in PULSE_HOME/landing, then a
  running Airflow (scheduler, api-server, dag-processor, triggerer as local processes; LocalExecutor;
  a PostgreSQL metadata database; pulse.local_airflow) with the transform in its default watcher mode:
  `pulse_ingest` is triggered for the 5-minute interval the file landed in; transform, features and
  score_audiences (skipped: no model yet) follow by Assets; then `pulse_train` is triggered, and
  score_audiences (score, audiences with their exports, report) follows its model. A step that follows
  by Assets is timed from the end of the step before, so the scheduler's reaction counts; a triggered
  one from its trigger. Starting the components and reading the DAGs is printed apart (a deployment
  does that once, not per run).
- Airflow (`--path dag-test`): the same DAGs with `dag.test()`, one after another in one process
  (bench/pipeline/airflow_chain.py) on a SQLite metadata database. `dag.test()` cannot run cosmos'
  watcher mode, so the transform DAG runs one dbt invocation per model (`local` mode) there.

Prints each step's wall time on both paths and the ratio Airflow / CLI, per step and in total
(goal: total <= 1.5). Uses PULSE_DATABASE_URL's server (or the embedded one) and drops its databases,
except with `--work DIR`, which keeps the simulation, the set-up database and PULSE_HOME there and reuses
them on the next run (drop the `pulse_bench_pipeline_*` database by hand afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

from pulse.config import PROJECT_ROOT  # noqa: E402
from pulse.events.simulator import simulate  # noqa: E402

ACTIVITY = 0.055  # bench/warehouse's visit-rate scale: about 51 events per customer over 90 days
# (step, the CLI verbs it is on that path, the DAG that does it)
STEPS = [
    ("ingest", [["ingest", "{day}"]], "pulse_ingest"),
    ("dbt build", [["build"]], "pulse_transform"),
    ("features", [["features"]], "pulse_features"),
    ("train", [["train"]], "pulse_train"),
    (
        "score, audiences, report",
        [["score"], ["audiences", "--export", "{home}/exports"], ["report"]],
        "pulse_score_audiences",
    ),
]
STEPS_DAGS = [dag for _, _, dag in STEPS]
# Set-up after loading the history: the state a daily run starts from (no champion yet: both paths train).
SETUP = [["build", "--full-refresh"], ["features"]]


def split_last_day(events: Path, history: Path, day: Path) -> tuple[int, int]:
    """Events before the last simulated day to `history`, the last day's to `day`."""
    with events.open() as source:
        last = max(json.loads(line)["timestamp"] for line in source)[:10] + "T00:00:00"
    counts = [0, 0]
    with events.open() as source, history.open("w") as old, day.open("w") as new:
        for line in source:
            is_day = json.loads(line)["timestamp"] >= last
            (new if is_day else old).write(line)
            counts[is_day] += 1
    return counts[0], counts[1]


def new_database(url: str, label: str, copy: bool = True) -> str:
    """A database beside the one of `url`, named with `label`: a copy of it (nobody may be connected to
    it), or empty."""
    source = make_url(url).database
    name = f"{source}_{label}"
    with harness.admin(url) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"' + (f' template "{source}"' if copy else ""))
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    with harness.admin(url) as conn:
        conn.execute(f'drop database if exists "{make_url(url).database}" with (force)')


def airflow_env(work: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # cosmos finds dbt on PATH
    }


def run_cli(url: str, home: Path, day: Path) -> tuple[dict[str, float], float]:
    """Each step's wall seconds, and the CPU seconds of all of them (clients and backends)."""
    env = {"PULSE_DATABASE_URL": url, "PULSE_HOME": str(home)}
    times, cpu = {}, 0.0
    for step, verbs, _ in STEPS:
        times[step] = 0.0
        for verb in verbs:
            args = [part.format(day=day, home=home) for part in verb]
            measured = harness.measure(harness.pulse(*args), url, env)
            times[step] += measured.seconds
            cpu += measured.client_cpu_s + measured.server_cpu_s
            print(
                f"  cli     {' '.join(['pulse', *verb[:1]]):24} {measured.seconds:7.1f} s"
                f"  (load {measured.load:.1f})",
                flush=True,
            )
    return times, cpu


def _land(day: Path, home: Path, run_at: datetime) -> None:
    """The day's file in PULSE_HOME/landing, landed in the ingest interval ending at `run_at`."""
    landed = home / "landing" / day.name
    landed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(day, landed)
    stamp = (run_at - timedelta(minutes=2)).timestamp()
    os.utime(landed, (stamp, stamp))


def run_airflow(
    url: str, home: Path, day: Path, work: Path, run_at: datetime
) -> tuple[dict[str, float], float, float]:
    """Each DAG run's wall seconds, the seconds to read the DAGs, and the CPU seconds of the whole
    chain process (reading the DAGs included) and its backends."""
    env = {"PULSE_DATABASE_URL": url, "PULSE_HOME": str(home), **airflow_env(work)}
    _land(day, home, run_at)
    chain = [sys.executable, str(Path(__file__).with_name("airflow_chain.py")), run_at.isoformat()]
    measured = harness.measure([*chain, *STEPS_DAGS], url, env)
    timings = json.loads(measured.output.split("TIMINGS ", 1)[1].splitlines()[0])
    for _, _, dag in STEPS:
        print(f"  airflow {dag:24} {timings[dag]:7.1f} s ({timings[dag + ' tasks']} tasks)", flush=True)
    print(f"  (load {measured.load:.1f} during the Airflow chain)", flush=True)
    cpu = measured.client_cpu_s + measured.server_cpu_s
    return {step: timings[dag] for step, _, dag in STEPS}, timings["read DAGs"], cpu


def run_scheduled(url: str, home: Path, day: Path, run_at: datetime) -> tuple[dict[str, float], float]:
    """The chain through a running Airflow (scheduler, api-server, dag-processor, triggerer; LocalExecutor;
    PostgreSQL metadata), the transform in its default (watcher) mode, as a deployment runs it. Each
    step's wall seconds: from the end of the step before (for a step that follows by Assets, so the
    scheduler's reaction is counted) or from its trigger, to the end of its run. And the seconds to
    start the components and have them read the DAGs (not counted)."""
    from pulse.config import Settings
    from pulse.local_airflow import cluster_environment, free_port, manual_interval, run_chain, start_cluster

    settings = Settings(database_url=url, home=home)
    metadata = new_database(url, "meta", copy=False)
    env = cluster_environment(
        settings,
        metadata_url=make_url(metadata).set(drivername="postgresql+psycopg2").render_as_string(False),
        port=free_port(),
    )
    env.update(
        {
            "PULSE_DBT_EXECUTION_MODE": "watcher",
            # Only the runs below: no schedule has a complete interval before next year.
            "PULSE_INGEST_SCHEDULE": "0 0 1 1 *",
            "PULSE_TRAIN_SCHEDULE": "0 0 1 1 *",
        }
    )
    _land(day, home, run_at)
    started = time.perf_counter()
    cluster = start_cluster(env)
    try:
        api = cluster.api()
        api.wait_for_dags(STEPS_DAGS)
        ready = time.perf_counter() - started
        runs = run_chain(
            api,
            run_at,
            ingest_interval=manual_interval(Settings.model_fields["ingest_schedule"].default, run_at),
            train_interval=manual_interval(Settings.model_fields["train_schedule"].default, run_at),
        )
    except BaseException:
        print(cluster.logs(), flush=True)
        raise
    finally:
        cluster.stop()
        drop_database(metadata)
    at = {dag: [(_moment(r["queued_at"]), _moment(r["end_date"])) for r in rs] for dag, rs in runs.items()}
    (ingest,), (transform,), (features,), (train,) = (at[d] for d in STEPS_DAGS[:4])
    scores = at["pulse_score_audiences"]  # skipped (no model yet), then after training
    ends = {
        "ingest": ingest[1] - ingest[0],
        "dbt build": transform[1] - ingest[1],
        "features": features[1] - transform[1],
        "train": train[1] - train[0],
        "score, audiences, report": scores[-1][1] - train[1],
    }
    times = {step: seconds.total_seconds() for step, seconds in ends.items()}
    for step, _, dag in STEPS:
        print(f"  airflow {dag:24} {times[step]:7.1f} s", flush=True)
    return times, ready


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def set_up(args: argparse.Namespace, work: Path, url: str, end: datetime) -> dict:
    """The history, built, with its features materialised; Airflow's metadata database migrated."""
    print(f"simulating {args.people:,} people x {args.days + 1} days ...", flush=True)
    sim = simulate(
        work / "sim", customers=args.people, days=args.days + 1, seed=args.seed, end=end, activity=ACTIVITY
    )
    history, day = work / "history.jsonl", work / "day.jsonl"
    n_history, n_day = split_last_day(sim.events_path, history, day)
    sim.events_path.unlink()
    print(f"history {n_history:,} events, the day {n_day:,}; setting up (not timed) ...", flush=True)
    env = {"PULSE_DATABASE_URL": url, "PULSE_HOME": str(work / "setup-home")}
    harness.measure(harness.pulse("up"), url, env)
    harness.measure(harness.pulse("ingest", str(history)), url, env)
    harness.backdate_loads(url)
    for verb in SETUP:
        harness.measure(harness.pulse(*verb), url, env)
    harness.settle(url)
    # dbt's manifest, which the transform DAG renders from: made once here (`pulse airflow` makes it
    # before its scheduler starts) and copied with PULSE_HOME into every run.
    make_manifest = "from pulse.transform import dbt_manifest; dbt_manifest()"
    harness.measure([sys.executable, "-c", make_manifest], url, env)
    migrate = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env={**os.environ, **airflow_env(work)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
    return {"url": url, "end": end.isoformat(), "history": n_history, "day": n_day, "people": args.people}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=44_000, help="simulated people (~44%% sign in)")
    parser.add_argument("--days", type=int, default=90, help="days of history before the day")
    parser.add_argument("--runs", type=int, default=1, help="Airflow-then-CLI runs on fresh copies")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--path",
        choices=("scheduler", "dag-test"),
        default="scheduler",
        help="the Airflow path: a running scheduler (watcher mode), or dag.test() in one process (local mode)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the simulation, the set-up database and PULSE_HOME here, and reuse them when present",
    )
    args = parser.parse_args()
    for key, value in {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}.items():
        os.environ.setdefault(key, value)

    work = args.work or Path(tempfile.mkdtemp(prefix="pulse-bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        state_file = work / "setup.json"
        if state_file.exists():
            setup = json.loads(state_file.read_text())
            print(f"reusing the set-up in {work}", flush=True)
        else:
            url = stack.enter_context(harness.fresh_database("pulse_bench_pipeline", keep=bool(args.work)))
            end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            setup = set_up(args, work, url, end)
            if args.work:
                state_file.write_text(json.dumps(setup))
        run_at = datetime.fromisoformat(setup["end"]) + timedelta(hours=1)
        day = work / "day.jsonl"
        results = []
        for n in range(1, args.runs + 1):
            print(f"run {n}:", flush=True)
            paths = {}
            for label in ("airflow", "cli"):
                home = work / f"home-{label}-{n}"
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(work / "setup-home", home)
                paths[label] = (new_database(setup["url"], f"{label}{n}"), home)
            try:
                # Airflow first: when its chain fails, the run stops before the CLI's half hour.
                if args.path == "scheduler":
                    airflow, read_dags = run_scheduled(*paths["airflow"], day, run_at)
                    airflow_cpu = None
                else:
                    airflow, read_dags, airflow_cpu = run_airflow(*paths["airflow"], day, work, run_at)
                cli, cli_cpu = run_cli(*paths["cli"], day)
            finally:
                for copy_url, _ in paths.values():
                    drop_database(copy_url)
            results.append((cli, airflow, read_dags, cli_cpu, airflow_cpu))

    print()
    print(
        f"{setup['day']:,} events of one day on {setup['history']:,} of history ({setup['people']:,} simulated people)"
    )
    for n, (cli, airflow, read_dags, cli_cpu, airflow_cpu) in enumerate(results, 1):
        before = "started and read its DAGs" if args.path == "scheduler" else "read its DAGs"
        print(
            f"\nrun {n}, Airflow by {args.path} ({before} in {read_dags:.1f} s before the runs, not counted)"
        )
        print("| step | CLI s | Airflow s | Airflow / CLI |")
        print("| --- | ---: | ---: | ---: |")
        for step, _, dag in STEPS:
            print(
                f"| {step} (`{dag}`) | {cli[step]:.1f} | {airflow[step]:.1f} | {airflow[step] / cli[step]:.2f} |"
            )
        total_cli, total_airflow = sum(cli.values()), sum(airflow.values())
        print(f"| **total** | {total_cli:.1f} | {total_airflow:.1f} | **{total_airflow / total_cli:.2f}** |")
        if airflow_cpu is not None:  # the scheduler's processes are not measured
            print(
                f"CPU seconds (clients and backends): CLI {cli_cpu:.0f}, Airflow {airflow_cpu:.0f} "
                f"(reading the DAGs included), ratio {airflow_cpu / cli_cpu:.2f}"
            )
    ratios = [sum(a.values()) / sum(c.values()) for c, a, *_ in results]
    print(f"\nratio Airflow / CLI: {', '.join(f'{r:.2f}' for r in ratios)}   goal <= 1.5")


if __name__ == "__main__":
    main()
