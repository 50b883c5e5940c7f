"""Run dbt against the warehouse (`pulse build`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulse.config import Settings, get_settings
from pulse.db import ConnParts, warehouse_url

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DBT_USE_COLORS": "False",
}


# What a production build (`pulse build`, the transform DAG, the warehouse benchmark) leaves out: dbt's
# unit tests. They check the models' SQL on fixed rows, which no run's data can change, so they belong in
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


def dbt_executable() -> str:
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


def dbt_env(settings: Settings) -> dict[str, str]:
    return {**DEFAULT_ENV, **os.environ, **QUIET_ENV, **ConnParts.from_url(warehouse_url(settings)).env()}


def run_dbt(
    args: list[str],
    settings: Settings | None = None,
    on_line: Callable[[str], None] | None = None,
) -> list[DbtNodeResult]:
    """Run `dbt <args>` for the project; return per-node results, raise DbtError on any failure."""
    settings = settings or get_settings()
    work = settings.home_dir / "dbt"
    target = work / "target"
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(project_dir(settings)),
        "--profiles-dir",
        str(project_dir(settings)),
        "--target-path",
        str(target),
        "--log-path",
        str(work / "logs"),
    ]
    (target / "run_results.json").unlink(missing_ok=True)  # never read a previous run's results
    process = subprocess.Popen(
        command, env=dbt_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if on_line:
            on_line(line.rstrip("\n"))
    returncode = process.wait()
    results = _read_results(target / "run_results.json")
    failed = [r for r in results if r.status in ("error", "fail", "runtime error")]
    if returncode != 0 or failed:
        detail = "\n".join(f"  {r.unique_id}: {r.status}: {r.message}" for r in failed)
        tail = "".join(output[-30:])
        raise DbtError(f"dbt {' '.join(args)} failed (exit {returncode})\n{detail or tail}")
    return results


def _read_results(path: Path) -> list[DbtNodeResult]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [
        DbtNodeResult(r["unique_id"], r["status"], r.get("message"), r.get("execution_time", 0.0))
        for r in data.get("results", [])
    ]


def build(
    settings: Settings | None = None, on_line: Callable[[str], None] | None = None
) -> list[DbtNodeResult]:
    """`dbt build`: every model and its tests, in dependency order.

    The audience models (tag `audiences`) read the scores, so they are built by `pulse audiences` after
    scoring, not here; dbt's unit tests run in development and CI, not here (`PRODUCTION_EXCLUDES`).
    """
    return run_dbt(["build", "--exclude", "tag:audiences", *PRODUCTION_EXCLUDES], settings, on_line)


def compiled_sql(model: str, settings: Settings | None = None) -> str:
    """The SQL dbt would run for `model` (compiled against the warehouse, not executed)."""
    settings = settings or get_settings()
    run_dbt(["compile", "--select", model], settings)
    target = settings.home_dir / "dbt" / "target" / "compiled"
    matches = sorted(target.rglob(f"{model}.sql"))
    if not matches:
        raise DbtError(f"dbt compiled no SQL for {model}")
    return matches[0].read_text()
