"""Airflow on this machine with Pulse's DAGs: `pulse airflow` (Airflow standalone) and its environment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pulse.config import Settings, get_settings
from pulse.db import warehouse_url
from pulse.transform import dbt_manifest

AIRFLOW_USER = "admin"


@dataclass
class AirflowStandalone:
    """A running `airflow standalone` in its own process group (stop it with `stop()`)."""

    process: subprocess.Popen
    url: str
    home: Path
    log_path: Path

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def password(self) -> str:
        return json.loads(self.password_file.read_text())[AIRFLOW_USER]

    def stop(self, timeout: float = 30) -> None:
        """Stop standalone and everything it started (scheduler, api-server, task workers)."""
        if self.process.poll() is None or _group_alive(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                time.sleep(0.5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def airflow_environment(
    settings: Settings, port: int = 8080, host: str = "127.0.0.1", paused: bool = False
) -> dict[str, str]:
    """The environment `airflow standalone` runs Pulse's DAGs with (starts the embedded warehouse if needed).

    Metadata database: SQLite in `PULSE_HOME/airflow/airflow.db` (Airflow 3 tasks reach it only through
    the api-server, so SQLite holds up for one machine); set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to use a
    PostgreSQL database instead. The warehouse is passed both as PULSE_DATABASE_URL and as the Airflow
    connection `pulse_warehouse` (AIRFLOW_CONN_PULSE_WAREHOUSE).
    """
    from pulse.db import create_schemas

    url = warehouse_url(settings)
    create_schemas(settings)
    home = settings.home_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(
        {
            # cosmos, dbt and standalone's own sub-processes are found on PATH: this venv first.
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_dir / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_dir / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(paused),
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://{_client_host(host)}:{port}",
            # Without this, tasks look for the execution API on the default port and fail silently.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "PULSE_DATABASE_URL": url,
            "AIRFLOW_CONN_PULSE_WAREHOUSE": url,
            "PULSE_HOME": str(settings.home_dir),
            "PULSE_PROJECT_DIR": str(settings.project_dir),
            "PULSE_FEAST_PROJECT": settings.feast_project,
        }
    )
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    # The transform DAG imports cosmos and dbt (seconds; more on a busy machine): parse with room.
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
    env.setdefault("AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT", "180")
    # Tasks wait up to 60 s (not 5) for the api-server: on a busy machine a call can take longer, and
    # its retry then conflicts with the first (the task fails on entering `running`).
    env.setdefault("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60")
    # Standalone also serves task and triggerer logs on fixed ports (8793, 8794 by default); derive
    # them from the UI port so two Pulse Airflows on one machine do not collide.
    env.setdefault("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", str(port + 1))
    env.setdefault("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", str(port + 2))
    if settings.redis_url:
        env["PULSE_REDIS_URL"] = settings.redis_url
    return env


def free_port() -> int:
    """A free port for the api-server whose next two are free too (the task and triggerer log servers)."""
    import socket

    def is_free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65000 and is_free(port + 1) and is_free(port + 2):
            return port
    raise RuntimeError("no free port")


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def start_airflow(
    settings: Settings | None = None,
    port: int = 8080,
    host: str = "127.0.0.1",
    paused: bool = False,
    timeout: float = 300,
) -> AirflowStandalone:
    """Start `airflow standalone` with Pulse's DAGs; return once its API answers and the login exists.

    Its output goes to `PULSE_HOME/airflow/standalone.log`. It runs in its own process group: stopping
    only `airflow standalone` would leave its scheduler, api-server and task processes running.
    """
    import urllib.request

    settings = settings or get_settings()
    dbt_manifest(settings)  # the transform DAG renders from it; make it before the first parse
    env = airflow_environment(settings, port=port, host=host, paused=paused)
    home = Path(env["AIRFLOW_HOME"])
    log_path = home / "standalone.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "standalone"],
        env=env,
        cwd=settings.project_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    running = AirflowStandalone(process, f"http://{_client_host(host)}:{port}", home, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            running.stop()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"airflow standalone exited ({process.returncode}); its log ends:\n{tail}")
        try:
            with urllib.request.urlopen(f"{running.url}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200 and running.password_file.exists():
                    return running
        except OSError:
            pass
        if time.monotonic() > deadline:
            running.stop()
            raise TimeoutError(
                f"Airflow did not answer on {running.url} within {timeout:.0f}s: see {log_path}"
            )
        time.sleep(2)


# --------------------------------------------------------------------------------------------------
# Airflow's components as separate local processes (scheduler, api-server, dag-processor, triggerer,
# Celery workers), driven through the REST API: what the Celery and backfill tests and bench/pipeline run.
# --------------------------------------------------------------------------------------------------

# The Celery executor's settings: the test and docker-compose's `celery` profile set the same keys.
CELERY_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT",
)
HOSTNAME_ENV = "PULSE_AIRFLOW_HOSTNAME"


def worker_hostname() -> str:
    """Airflow's `hostname_callable` for local workers: `PULSE_AIRFLOW_HOSTNAME`, else the machine's name.

    Two workers on one machine otherwise record the same hostname in every task instance.
    """
    import socket

    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def cluster_environment(
    settings: Settings,
    metadata_url: str,
    port: int,
    executor: str = "LocalExecutor",
    broker_url: str | None = None,
    result_backend: str | None = None,
    worker_concurrency: int = 2,
    parallelism: int = 4,
) -> dict[str, str]:
    """The environment of every component: `airflow_environment` plus a PostgreSQL metadata database,
    the executor (Celery: broker and result backend), one JWT secret (the scheduler signs the tokens
    tasks present to the api-server) and the simple auth manager open to local admins. DAGs are
    created paused: the caller unpauses the ones it runs (`AirflowAPI.wait_for_dags`)."""
    import secrets

    env = airflow_environment(settings, port=port, paused=True)
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__EXECUTOR": executor,
            # Tasks at once (LocalExecutor: its worker processes; default 32): Pulse's tasks use about a
            # core each, so more than a few only thrash a small machine.
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            # A task whose worker died is failed (then retried) after 30 s without a heartbeat, not 5 min.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            # New DAG files and asset events are picked up within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        }
    )
    if executor == "CeleryExecutor":
        if not (broker_url and result_backend):
            raise ValueError("the Celery executor needs a broker_url and a result_backend")
        env.update(
            {
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            }
        )
    return env


@dataclass
class AirflowCluster:
    """Airflow's components as local processes, each in its own process group; `stop()` ends them all."""

    env: dict[str, str]
    url: str
    home: Path
    processes: dict[str, subprocess.Popen]

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.home / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_celery_worker(self, name: str) -> subprocess.Popen:
        """A Celery worker whose tasks record `name` as their hostname."""
        return self.start(
            name, "celery", "worker", "--celery-hostname", f"{name}@%h", env={HOSTNAME_ENV: name}
        )

    def kill(self, name: str) -> None:
        """SIGKILL a component and everything it started (a worker dying mid-task)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            while time.monotonic() < deadline and _group_alive(process.pid):
                time.sleep(0.5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.home.glob("*.log"))
        )

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.url)


def start_cluster(
    env: dict[str, str],
    components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer"),
    timeout: float = 300,
) -> AirflowCluster:
    """Migrate the metadata database, start `components`, return once the API answers.

    The dbt manifest the transform DAG renders from is made first, as `start_airflow` does.
    """
    import urllib.request

    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    dbt_manifest(Settings(home=Path(env["PULSE_HOME"]), project_dir=Path(env["PULSE_PROJECT_DIR"])))
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=timeout
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-3000:]}")
    cluster = AirflowCluster(env, env["AIRFLOW__API__BASE_URL"], home, {})
    for component in components:
        cluster.start(
            component,
            component,
            *(["--port", env["AIRFLOW__API__PORT"]] if component == "api-server" else []),
        )
    deadline = time.monotonic() + timeout
    while True:
        dead = {name: p.returncode for name, p in cluster.processes.items() if p.poll() is not None}
        if dead:
            logs = cluster.logs()
            cluster.stop()
            raise RuntimeError(f"Airflow components exited {dead}:\n{logs}")
        try:
            with urllib.request.urlopen(f"{cluster.url}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return cluster
        except OSError:
            pass
        if time.monotonic() > deadline:
            cluster.stop()
            raise TimeoutError(f"Airflow's api-server did not answer on {cluster.url} within {timeout:.0f}s")
        time.sleep(2)


FINISHED = {"success", "failed"}


class AirflowAPI:
    """Airflow's REST API (v2) for the few calls Pulse's tests and benchmarks make."""

    def __init__(self, url: str, password: str | None = None) -> None:
        import httpx

        self.url = url
        with httpx.Client(base_url=url, timeout=120) as client:
            if password is None:  # simple auth manager, every user an admin
                response = client.get("/auth/token")
            else:
                response = client.post("/auth/token", json={"username": AIRFLOW_USER, "password": password})
            response.raise_for_status()
            token = response.json()["access_token"]
        self.client = httpx.Client(
            base_url=f"{url}/api/v2", timeout=120, headers={"Authorization": f"Bearer {token}"}
        )

    def _call(self, method: str, path: str, **kwargs):
        import httpx

        for attempt in range(3):
            try:
                response = self.client.request(method, path, **kwargs)
                break
            except httpx.TimeoutException:
                # A busy api-server: reads are safe to repeat; a write may have happened, so it is not.
                if method != "GET" or attempt == 2:
                    raise
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        return response.json()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 300) -> None:
        """Wait until the dag-processor has parsed every DAG in `dag_ids`; then unpause them."""
        deadline = time.monotonic() + timeout
        while True:
            known = {d["dag_id"] for d in self._call("GET", "/dags", params={"limit": 100})["dags"]}
            if set(dag_ids) <= known:
                break
            if time.monotonic() > deadline:
                errors = self._call("GET", "/importErrors")
                raise TimeoutError(
                    f"DAGs not parsed: {sorted(set(dag_ids) - known)}; import errors: {errors}"
                )
            time.sleep(3)
        for dag_id in dag_ids:
            self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime | None,
        conf: dict | None = None,
        interval: tuple[datetime, datetime] | None = None,
    ) -> str:
        """A manual run; `interval` sets its data interval (Airflow infers one from the timetable otherwise)."""
        body: dict = {"logical_date": logical_date.isoformat() if logical_date else None, "conf": conf or {}}
        if interval:
            body["data_interval_start"], body["data_interval_end"] = (t.isoformat() for t in interval)
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def delete_runs(self, dag_id: str, run_types: Collection[str] | None = None) -> None:
        """Delete the DAG's runs (only those of `run_types`, e.g. `{"manual"}`, when given).

        Deleting a DAG's latest scheduled run makes the scheduler create it again: with `catchup=False` the
        next run is the latest complete interval, counted from the latest scheduled or backfill run left."""
        for run in self.runs(dag_id):
            if run_types is not None and run["run_type"] not in run_types:
                continue
            response = self.client.delete(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
            if response.status_code >= 400:
                raise RuntimeError(f"deleting {dag_id} {run['dag_run_id']}: {response.text[:500]}")

    def return_value(self, dag_id: str, run_id: str, task_id: str):
        """What a task returned (its `return_value` XCom)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self._call("GET", path, params={"deserialize": True})["value"]

    def wait_until_idle(self, dag_ids: list[str], quiet: float = 15, timeout: float = 1200) -> None:
        """Wait until no run of `dag_ids` is unfinished, no asset event is queued for one of them, and
        none has started for `quiet` seconds (a queued event starts a run within the scheduler's next
        loops; events Airflow drops while a DAG is at `max_active_runs`, apache/airflow#56050, are not
        queued: see pulse.dag_support.data_window)."""
        deadline = time.monotonic() + timeout
        last_change, last_seen = time.monotonic(), None
        while True:
            runs = {dag_id: self.runs(dag_id) for dag_id in dag_ids}
            seen = {(d, r["dag_run_id"], r["state"]) for d, rs in runs.items() for r in rs}
            if seen != last_seen:
                last_change, last_seen = time.monotonic(), seen
            busy = any(r["state"] not in FINISHED for rs in runs.values() for r in rs) or any(
                self.queued_asset_events(dag_id) for dag_id in dag_ids
            )
            if not busy and time.monotonic() - last_change >= quiet:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs of {dag_ids} still going after {timeout:.0f}s: {sorted(seen)}")
            time.sleep(3)

    def queued_asset_events(self, dag_id: str) -> int:
        """Asset events queued for `dag_id` that have not yet started a run."""
        return self._call("GET", f"/dags/{dag_id}/assets/queuedEvents")["total_entries"]

    def runs(self, dag_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})[
            "dag_runs"
        ]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float = 900) -> list[dict]:
        """Wait until `dag_id` has at least `count` runs and all of them have finished; return them."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id)
            if len(runs) >= count and all(r["state"] in FINISHED for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}: runs not finished within {timeout:.0f}s: {runs}")
            time.sleep(3)

    def backfill(self, dag_id: str, start: datetime, end: datetime, max_active_runs: int = 1) -> dict:
        """Airflow 3's backfill: the scheduler creates and runs one run per interval in [start, end]."""
        body = {
            "dag_id": dag_id,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "none",
        }
        return self._call("POST", "/backfills", json=body)


CHAIN = ("pulse_ingest", "pulse_transform", "pulse_features", "pulse_train", "pulse_score_audiences")


def manual_interval(cron: str, run_after: datetime) -> tuple[datetime, datetime]:
    """The data interval a manual run at `run_after` gets on a `cron` schedule (as `dag.test()` gives it):
    to pass as `AirflowAPI.trigger(interval=...)` when the DAGs run on another schedule."""
    import pendulum
    from airflow.timetables.interval import CronDataIntervalTimetable

    timetable = CronDataIntervalTimetable(cron, timezone="UTC")
    interval = timetable.infer_manual_data_interval(run_after=pendulum.instance(run_after))
    return interval.start, interval.end


def run_chain(
    api: AirflowAPI,
    logical_date: datetime,
    ingest_interval: tuple[datetime, datetime] | None = None,
    train_interval: tuple[datetime, datetime] | None = None,
    train: bool = True,
    timeout: float = 3600,
) -> dict[str, list[dict]]:
    """Pulse's whole chain through a running Airflow, as a schedule would run it; each DAG's runs.

    Triggers `pulse_ingest` for `logical_date` (data interval `ingest_interval`, else the timetable's)
    and waits for what its Assets start: transform, features, then score_audiences (skipped until a
    model exists). With `train`, then triggers `pulse_train` and waits for the score_audiences run its
    model starts. Fails on any failed run. The DAGs must be unpaused (`api.wait_for_dags(CHAIN)`);
    a run's `start_date`/`end_date` give each step's wall time.
    """
    before = {dag_id: len(api.runs(dag_id)) for dag_id in CHAIN}
    api.trigger("pulse_ingest", logical_date, interval=ingest_interval)
    runs = {}
    for dag_id in ("pulse_ingest", "pulse_transform", "pulse_features", "pulse_score_audiences"):
        runs[dag_id] = api.wait_for_runs(dag_id, before[dag_id] + 1, timeout)[before[dag_id] :]
    if train:
        api.trigger("pulse_train", logical_date, interval=train_interval)
        runs["pulse_train"] = api.wait_for_runs("pulse_train", before["pulse_train"] + 1, timeout)[
            before["pulse_train"] :
        ]
        score = before["pulse_score_audiences"]
        runs["pulse_score_audiences"] = api.wait_for_runs("pulse_score_audiences", score + 2, timeout)[score:]
    failed = {d: r["dag_run_id"] for d, rs in runs.items() for r in rs if r["state"] != "success"}
    if failed:
        raise RuntimeError(f"failed runs: {failed}")
    return runs
