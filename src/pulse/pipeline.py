"""The steps of Pulse's flow, each one call: what the CLI verbs and the Airflow tasks run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import ConnParts, engine, warehouse_url
from pulse.events.ingest import expand_paths, ingest_file
from pulse.transform import DbtError

PULSE_OWNED_TABLES = (
    "ml.training_windows",
    "audiences.audience_members",
    "audiences.audience_membership_history",
    "audiences.audience_lift",
    "audiences.audience_definitions",
    "ml.score_drift",
    "ml.recommendations",
    "ml.segments",
    "ml.segment_profiles",
    "ml.scores",
    "ml.model_metrics",
    "ml.model_runs",
    "raw.events_rejected",
    "raw.events",
)


def land_file(path: Path, settings: Settings | None = None) -> Path:
    """Copy a file into the landing folder for the next ingest run."""
    settings = settings or get_settings()
    target = settings.landing_dir / path.name
    shutil.copyfile(path, target)
    return target


def reset_pulse_tables(settings: Settings | None = None) -> None:
    """Empty the tables Pulse owns (used by `pulse demo` so each demo starts clean)."""
    settings = settings or get_settings()
    _ensure_training_windows(settings)
    with engine(settings).begin() as conn:
        # Some are created on first use (dbt models, the training-window ledger): empty those that exist.
        existing = [
            t
            for t in PULSE_OWNED_TABLES
            if conn.execute(sa.text("select to_regclass(:t)"), {"t": t}).scalar()
        ]
        conn.execute(sa.text(f"truncate {', '.join(existing)}"))


# --------------------------------------------------------------------------------------------------
# Interval steps: what the Airflow tasks call. Each takes the run's data window [start, end) and is
# idempotent over it: running the same window again leaves every output table as it was.
# --------------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """A plain `datetime` in UTC (Airflow hands out pendulum DateTimes, which lose their timezone in
    arithmetic when it is `datetime.UTC`)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)


def window_key(end: datetime) -> str:
    """A folder-safe name for the window ending at `end` (e.g. `20260301T0100Z`)."""
    return f"{_utc(end):%Y%m%dT%H%M%SZ}"


@dataclass
class WindowIngest:
    window_start: str
    window_end: str
    files: list[str] = field(default_factory=list)
    lines: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0


def ingest_window(start: datetime, end: datetime, settings: Settings | None = None) -> WindowIngest:
    """Load the files landed in `PULSE_HOME/landing/` before `end` into `raw.events`.

    A file belongs to the first window whose end is after its modification time (files missed by an
    earlier window are picked up by the next one). It is first claimed, by moving it to
    `landing/loaded/<window end>/`, then loaded from there in one transaction; loading keys on
    messageId and rejects key on (file, line, payload), so re-running the window reloads exactly its
    claimed files and changes nothing. Files landed at or after `end` wait for their own window.
    """
    settings = settings or get_settings()
    start, end = _utc(start), _utc(end)
    landing = settings.landing_dir
    claimed_dir = landing / "loaded" / window_key(end)
    pending = [
        path for path in expand_paths(landing) if datetime.fromtimestamp(path.stat().st_mtime, UTC) < end
    ]
    if pending:
        claimed_dir.mkdir(parents=True, exist_ok=True)
    for path in pending:
        target = claimed_dir / path.name
        n = 1
        while target.exists():  # the same name landed twice in one window: keep both
            target = claimed_dir / f"{path.stem}.{n}{path.suffix}"
            n += 1
        shutil.move(str(path), target)
    files = expand_paths(claimed_dir) if claimed_dir.is_dir() else []
    report = WindowIngest(window_start=start.isoformat(), window_end=end.isoformat())
    for file in files:
        result = ingest_file(file, settings)
        report.files.append(file.name)
        report.lines += result.lines
        report.inserted += result.inserted
        report.duplicates += result.duplicates
        report.rejected += result.rejected
    return report


DBT_MANIFEST_INPUTS = ("dbt_project.yml", "models", "macros", "tests", "seeds", "snapshots")
# `dbt parse` reads the profile but never connects: these stand in when no warehouse is configured.
_PARSE_ONLY_ENV = {"PULSE_PG_HOST": "localhost", "PULSE_PG_DBNAME": "pulse"}


def dbt_manifest_path(settings: Settings | None = None) -> Path:
    """Where `dbt parse` writes the manifest the Airflow transform DAG is rendered from."""
    settings = settings or get_settings()
    return settings.home_dir / "dbt" / "manifest" / "manifest.json"


def _newest_input_mtime(dbt_dir: Path) -> float:
    newest = 0.0
    for name in DBT_MANIFEST_INPUTS:
        root = dbt_dir / name
        paths = [root] if root.is_file() else root.rglob("*") if root.is_dir() else []
        for path in paths:
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def dbt_manifest(settings: Settings | None = None, force: bool = False) -> Path:
    """The dbt manifest of `dbt_project/`, re-made with `dbt parse` when any model, macro or test is newer.

    Written to a temporary target and renamed, so a DAG processor reading it never sees half a file.
    """
    from pulse.transform import QUIET_ENV, dbt_executable, project_dir

    settings = settings or get_settings()
    manifest = dbt_manifest_path(settings)
    dbt_dir = project_dir(settings)
    if not force and manifest.exists() and manifest.stat().st_mtime >= _newest_input_mtime(dbt_dir):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=manifest.parent, prefix=".parse-") as tmp:
        env = {**_PARSE_ONLY_ENV, **os.environ, **QUIET_ENV}
        command = [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(dbt_dir),
            "--profiles-dir",
            str(dbt_dir),
            "--target-path",
            tmp,
            "--log-path",
            str(Path(tmp) / "logs"),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise DbtError(f"dbt parse of {dbt_dir} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        os.replace(Path(tmp) / "manifest.json", manifest)
    return manifest


def dbt_connection_env(settings: Settings | None = None) -> dict[str, str]:
    """The `PULSE_PG_*` variables `dbt_project/profiles.yml` reads, for the warehouse in the settings."""
    return ConnParts.from_url(warehouse_url(settings or get_settings())).env()


def check_marts(settings: Settings | None = None) -> dict[str, int]:
    """After dbt: the marts the next steps read exist and are not empty (a clear error otherwise)."""
    settings = settings or get_settings()
    counts: dict[str, int] = {}
    with engine(settings).connect() as conn:
        for table in ("marts.customer_features", "marts.orders"):
            exists = conn.execute(sa.text("select to_regclass(:t)"), {"t": table}).scalar()
            if exists is None:
                raise RuntimeError(f"{table} does not exist after the dbt run: check the dbt task logs")
            counts[table] = conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()
    if counts["marts.customer_features"] == 0:
        raise RuntimeError(
            "marts.customer_features is empty after the dbt run: raw.events has no customer activity yet"
        )
    return counts


def materialize_features(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Apply the Feast repo and bring the online store to its state as of the window's end."""
    from pulse.features.store import materialize_window

    result = materialize_window(_utc(start), _utc(end), settings or get_settings())
    return {
        "objects": len(result.objects),
        "materialized_from": result.start.isoformat(),
        "materialized_to": result.end.isoformat(),
    }


TRAINING_WINDOWS_DDL = """
create table if not exists ml.training_windows (
    window_end  timestamptz not null,  -- the end of the Airflow data interval the training ran for
    model_name  text not null,
    run_id      text not null,         -- the champion that training produced
    primary key (window_end, model_name)
)
"""


def _ensure_training_windows(settings: Settings) -> None:
    with engine(settings).begin() as conn:
        conn.exec_driver_sql(TRAINING_WINDOWS_DDL)


def _champions(result) -> list[tuple[str, str, dict]]:
    """(model name, champion run id, holdout metrics) from what `pulse.modeling.train.train` returns.

    The one place that knows the trainer's result shape: a list of per-task outcomes (`champion`,
    `holdout`), or a single result (`run`, `metrics`).
    """
    found = []
    for outcome in result if isinstance(result, list) else [result]:
        run = getattr(outcome, "champion", None) or getattr(outcome, "run", None)
        if run is not None:
            metrics = getattr(outcome, "holdout", None) or getattr(outcome, "metrics", None) or {}
            found.append((run.model_name, run.run_id, dict(metrics)))
    return found


def train_window(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Train once per window: a re-run of a window that already has its models returns them.

    The champions a window's training produced are recorded in `ml.training_windows`; re-running the
    window (a retry, a cleared task) finds them and trains nothing, so `ml.model_runs`, the metrics and
    the champions stay as they were. A manual trigger is a new window, so it always trains.
    """
    from pulse.features.store import apply
    from pulse.modeling.train import train

    settings = settings or get_settings()
    end = _utc(end)
    _ensure_training_windows(settings)
    with engine(settings).connect() as conn:
        done = conn.execute(
            sa.text(
                "select w.model_name, w.run_id, r.run_id is not null as present from ml.training_windows w "
                "left join ml.model_runs r using (run_id) where w.window_end = :e order by 1"
            ),
            {"e": end},
        ).all()
    if done and all(row.present for row in done):
        return {"trained": False, "champions": {row.model_name: row.run_id for row in done}}
    apply(settings)  # training reads its feature services from the registry
    champions = _champions(train(settings))
    if not champions:
        raise RuntimeError("training produced no model: see the task log for each model's reason")
    with engine(settings).begin() as conn:
        conn.execute(sa.text("delete from ml.training_windows where window_end = :e"), {"e": end})
        conn.execute(
            sa.text("insert into ml.training_windows (window_end, model_name, run_id) values (:e, :m, :r)"),
            [{"e": end, "m": name, "r": run_id} for name, run_id, _ in champions],
        )
    return {
        "trained": True,
        "champions": {name: run_id for name, run_id, _ in champions},
        "metrics": {name: metrics for name, _, metrics in champions},
    }


def score_customers(settings: Settings | None = None) -> dict | None:
    """Score the latest snapshot with every champion model; None when no model has been trained yet."""
    from pulse.modeling.registry import NoChampionError
    from pulse.scoring import score

    try:
        result = score(settings or get_settings())
    except NoChampionError:
        return None
    results = result if isinstance(result, list) else [result]
    return {
        "as_of": max(r.as_of for r in results).isoformat(),
        "scored": {getattr(r, "model_name", r.run_id): r.n_scored for r in results},
    }


# dbt models built after scoring (by the audiences step), not by the transform DAG; `pulse build` also
# leaves them out.
AFTER_SCORING_DBT_SELECTOR = "tag:audiences"


def build_audiences(settings: Settings | None = None) -> dict:
    """Rebuild every audience from the latest scores (members, holdouts, membership history, lift) and
    write their exports to `PULSE_HOME/exports/` (one CSV per audience, treatment only, hashed emails)."""
    from pulse.audiences import build_audiences as build
    from pulse.audiences import export_audiences

    settings = settings or get_settings()
    result = build(settings)
    exports = export_audiences(settings.home_dir / "exports", settings)
    return {
        "members": sum(c.members for c in result.changes),
        "audiences": {c.audience: {"members": c.members, "holdout": c.holdout} for c in result.changes},
        "exports": [str(path) for path in exports],
    }


def write_report(settings: Settings | None = None) -> dict:
    """The HTML report of the latest models, scores and audiences (`PULSE_HOME/reports/`)."""
    from pulse.reporting import write_report as write

    return {"report": str(write(settings or get_settings()))}


# --------------------------------------------------------------------------------------------------
# `pulse airflow`: Airflow standalone with Pulse's DAGs and plugins.
# --------------------------------------------------------------------------------------------------

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
    # Standalone also serves task and triggerer logs on fixed ports (8793, 8794 by default); derive
    # them from the UI port so two Pulse Airflows on one machine do not collide.
    env.setdefault("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", str(port + 1))
    env.setdefault("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", str(port + 2))
    if settings.redis_url:
        env["PULSE_REDIS_URL"] = settings.redis_url
    return env


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
