"""Run dbt against the warehouse (`pulse build`), and what defines a production build.

Also makes the dbt manifest the Airflow transform DAG is rendered from (`dbt_manifest`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pulse.config import Settings, get_settings
from pulse.db import ConnParts, warehouse_url
from pulse.locks import marts_lock

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DBT_USE_COLORS": "False",
}


# What a production build (`pulse build`, the transform DAG) leaves out. The audience models (tag
# `audiences`) read the scores, so `pulse audiences` builds them after scoring.
AUDIENCES_SELECTOR = "tag:audiences"
PRODUCTION_EXCLUDE_SELECTORS = [AUDIENCES_SELECTOR]
# And dbt's unit tests (also left out by the warehouse benchmark). They check the models' SQL on fixed rows, which no run's data can change, so they belong in
# development and CI (dbt's own guidance): the integration tests (`make test`) build with them. The data
# tests, which check the data each run writes, always run.
PRODUCTION_EXCLUDES_ENV = {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test"}
PRODUCTION_EXCLUDES = ["--exclude-resource-type", "unit_test"]


class DbtError(RuntimeError):
    """dbt failed: the message names each failing node and why."""


@dataclass
class DbtNodeResult:
    unique_id: str
    status: str
    message: str | None
    execution_time: float
    compiled_code: str | None = None


def dbt_executable() -> str:
    """The `dbt` command beside this Python (for the Airflow DAG's cosmos tasks and `dbt parse`)."""
    beside_python = Path(sys.executable).parent / "dbt"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbt")
    if not found:
        raise DbtError("dbt is not installed in this environment (pip install dbt-postgres)")
    return found


def project_dir(settings: Settings) -> Path:
    return settings.project_dir / "dbt_project"


# Defaults the caller's environment may override. dbt's log file (`PULSE_HOME/dbt/logs/dbt.log`) at info:
# node starts, ends and errors. At its own default, debug, dbt also writes every statement with its
# timing, which costs about 0.35 s a build (4% of a daily incremental one); DBT_LOG_LEVEL_FILE=debug
# brings it back.
DEFAULT_ENV = {"DBT_LOG_LEVEL_FILE": "info"}


def dbt_connection_env(settings: Settings | None = None) -> dict[str, str]:
    """The `PULSE_PG_*` variables `dbt_project/profiles.yml` reads, for the warehouse in the settings."""
    return ConnParts.from_url(warehouse_url(settings or get_settings())).env()


def dbt_env(settings: Settings) -> dict[str, str]:
    return {**DEFAULT_ENV, **os.environ, **QUIET_ENV, **dbt_connection_env(settings)}


@dataclass
class DbtProgress:
    """A node finished: `done` of `total` nodes, `node` its name, `status` dbt's (success, pass, ...)."""

    done: int
    total: int
    node: str
    status: str


# dbt runs in this process (dbt's programmatic `dbtRunner`), one invocation at a time: a `dbt` process
# costs about 2 s of start-up (importing dbt) before its first node, which a daily incremental build
# would pay every run. Project files are re-read at each invocation (partial parsing, ~0.2 s), so an
# edited model is always seen.
_DBT_LOCK = threading.Lock()


def run_dbt(
    args: list[str],
    settings: Settings | None = None,
    on_progress: Callable[[DbtProgress], None] | None = None,
) -> list[DbtNodeResult]:
    """Run `dbt <args>` for the project; return per-node results, raise DbtError on any failure.

    dbt's own console output is off (`--log-level none`): progress reaches `on_progress`, failures the
    DbtError, and the full log `PULSE_HOME/dbt/logs/dbt.log`. `target/run_results.json` is written as
    dbt would; the manifest is not (`--no-write-json`: about 0.3 s a build; `dbt_manifest` makes the one
    the Airflow DAG reads).
    """
    from dbt.artifacts.schemas.run import RunExecutionResult
    from dbt.cli.main import dbtRunner

    settings = settings or get_settings()
    work = settings.home_dir / "dbt"
    target = work / "target"
    command = [
        *args,
        "--project-dir",
        str(project_dir(settings)),
        "--profiles-dir",
        str(project_dir(settings)),
        "--target-path",
        str(target),
        "--log-path",
        str(work / "logs"),
        "--log-level",
        "none",
        "--no-write-json",
    ]
    progress = _ProgressEvents(on_progress)
    with _DBT_LOCK, _environment(dbt_env(settings)):
        outcome = dbtRunner(callbacks=[progress]).invoke(command)
    results = _node_results(outcome.result)
    if isinstance(outcome.result, RunExecutionResult):
        target.mkdir(parents=True, exist_ok=True)
        outcome.result.write(str(target / "run_results.json"))
    failed = [r for r in results if r.status in ("error", "fail", "runtime error")]
    if not outcome.success or failed:
        detail = "\n".join(f"  {r.unique_id}: {r.status}: {r.message}" for r in failed)
        cause = f"{type(outcome.exception).__name__}: {outcome.exception}" if outcome.exception else ""
        raise DbtError(
            f"dbt {' '.join(args)} failed\n{detail or cause or progress.errors or 'see ' + str(work / 'logs')}"
        )
    return results


class _ProgressEvents:
    """dbt event callback: counts finished nodes for `on_progress`, keeps error lines for DbtError."""

    def __init__(self, on_progress: Callable[[DbtProgress], None] | None) -> None:
        self.on_progress = on_progress
        self.total = self.done = 0
        self.errors = ""

    def __call__(self, event) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            self.total = event.data.node_count
        elif name == "NodeFinished" and self.on_progress:
            self.done += 1
            node = event.data.node_info
            self.on_progress(DbtProgress(self.done, self.total, node.node_name, node.node_status))
        elif event.info.level == "error":
            self.errors += event.info.msg + "\n"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ set to `values` for the block (dbt reads its flags and profiles.yml's env vars there)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _node_results(result) -> list[DbtNodeResult]:
    return [
        DbtNodeResult(
            r.node.unique_id,
            str(r.status),
            r.message,
            r.execution_time,
            getattr(r.node, "compiled_code", None),
        )
        for r in getattr(result, "results", None) or []
    ]


def build(
    settings: Settings | None = None,
    on_progress: Callable[[DbtProgress], None] | None = None,
    full_refresh: bool = False,
) -> list[DbtNodeResult]:
    """`dbt build`: every model and its tests, in dependency order (`full_refresh`: from scratch).

    A production build: without the audience models (built by `pulse audiences` after scoring) and
    dbt's unit tests (run in development and CI); see `PRODUCTION_EXCLUDE_SELECTORS`.
    """
    settings = settings or get_settings()
    args = ["build", "--exclude", *PRODUCTION_EXCLUDE_SELECTORS, *PRODUCTION_EXCLUDES]
    # Alone: a build may empty the incremental models before refilling them (pulse.locks).
    with marts_lock("exclusive", "dbt build", settings):
        return run_dbt([*args, "--full-refresh"] if full_refresh else args, settings, on_progress)


def compiled_sql(model: str, settings: Settings | None = None) -> str:
    """The SQL dbt would run for `model` (compiled against the warehouse, not executed)."""
    settings = settings or get_settings()
    run_dbt(["compile", "--select", model], settings)
    target = settings.home_dir / "dbt" / "target" / "compiled"
    matches = sorted(target.rglob(f"{model}.sql"))
    if not matches:
        raise DbtError(f"dbt compiled no SQL for {model}")
    return matches[0].read_text()


def compiled_inline(sql: str, settings: Settings | None = None) -> str:
    """`sql` (dbt Jinja: the project's macros, `ref`) as dbt compiles it against the warehouse, not run."""
    results = run_dbt(["compile", "--inline", sql], settings)
    if len(results) != 1 or results[0].compiled_code is None:
        raise DbtError(f"dbt compiled no SQL for {sql!r}")
    return results[0].compiled_code


# --------------------------------------------------------------------------------------------------
# The manifest the Airflow transform DAG renders its tasks from.
# --------------------------------------------------------------------------------------------------

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
