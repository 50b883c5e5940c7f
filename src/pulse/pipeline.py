"""The steps of Pulse's flow, each one call: what the CLI verbs and the Airflow tasks run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import ConnParts, engine, warehouse_url
from pulse.events.ingest import IngestResult, expand_paths, ingest_file
from pulse.transform import DbtError

PULSE_OWNED_TABLES = (
    "ml.training_windows",
    "audiences.audience_members",
    "audiences.audience_definitions",
    "ml.scores",
    "ml.model_metrics",
    "ml.model_runs",
    "raw.events_rejected",
    "raw.events",
)


def ingest_landed_files(settings: Settings | None = None) -> IngestResult:
    """Load every event file in `PULSE_HOME/landing/`, then move it to `landing/loaded/`.

    Each file commits on its own; a file moves only after its commit, and a crash in between means it is
    loaded again next time, which adds nothing (messageId is the key).
    """
    settings = settings or get_settings()
    landing = settings.landing_dir
    done = landing / "loaded"
    done.mkdir(exist_ok=True)
    total = IngestResult()
    for file in expand_paths(landing):
        total += ingest_file(file, settings)
        shutil.move(str(file), done / file.name)
    return total


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
        conn.execute(sa.text(f"truncate {', '.join(PULSE_OWNED_TABLES)}"))


# --------------------------------------------------------------------------------------------------
# Interval steps: what the Airflow tasks call. Each takes the run's data window [start, end) and is
# idempotent over it: running the same window again leaves every output table as it was.
# --------------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    model_name  text not null,
    window_end  timestamptz not null,  -- the Airflow data interval the run trained for
    run_id      text not null,
    primary key (model_name, window_end)
)
"""


def _ensure_training_windows(settings: Settings) -> None:
    with engine(settings).begin() as conn:
        conn.exec_driver_sql(TRAINING_WINDOWS_DDL)


def train_window(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Train once per window: a re-run of a window that already has its model returns that model.

    A run trained for a window is recorded in `ml.training_windows`; re-running the window (a retry, a
    cleared task) finds it and trains nothing, so `ml.model_runs` and the champion stay as they were.
    A manual trigger is a new window, so it always trains.
    """
    from pulse.features.store import apply
    from pulse.modeling.train import MODEL_NAME, train

    settings = settings or get_settings()
    end = _utc(end)
    _ensure_training_windows(settings)
    with engine(settings).connect() as conn:
        done = conn.execute(
            sa.text(
                "select w.run_id from ml.training_windows w join ml.model_runs r using (run_id) "
                "where w.model_name = :m and w.window_end = :e"
            ),
            {"m": MODEL_NAME, "e": end},
        ).scalar()
    if done:
        return {"run_id": done, "trained": False}
    apply(settings)  # training reads the feature service from the registry
    result = train(settings)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into ml.training_windows (model_name, window_end, run_id) values (:m, :e, :r) "
                "on conflict (model_name, window_end) do update set run_id = excluded.run_id"
            ),
            {"m": result.run.model_name, "e": end, "r": result.run.run_id},
        )
    return {"run_id": result.run.run_id, "trained": True, **result.metrics}


def score_customers(settings: Settings | None = None) -> dict | None:
    """Score the latest snapshot with the champion model; None when no model has been trained yet."""
    from pulse.modeling.registry import NoChampionError
    from pulse.scoring import score

    try:
        result = score(settings or get_settings())
    except NoChampionError:
        return None
    return {"run_id": result.run_id, "as_of": result.as_of.isoformat(), "scored": result.n_scored}


def build_audiences(settings: Settings | None = None) -> dict:
    """Rebuild the audiences from the latest scores."""
    from pulse.audiences import build_audience

    return asdict(build_audience(settings=settings or get_settings()))
