"""Airflow on this machine with Pulse's DAGs: `pulse airflow` (Airflow standalone) and its environment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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
