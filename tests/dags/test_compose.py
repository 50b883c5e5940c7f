"""docker-compose.yml: Debian's `docker-compose` accepts it (`config`), and it describes the stack Pulse
documents. No Docker engine runs here, so nothing is started; `make test` installs docker-compose."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import yaml

from pulse.config import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


# Every secret compose requires (`${VAR:?}`: no defaults), with throwaway values.
SECRETS = {
    name: f"test-{name.lower().replace('_', '-')}"
    for name in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
        "PIPELINE_DB_PASSWORD",
        "COLLECTOR_DB_PASSWORD",
        "FEATURE_SERVER_DB_PASSWORD",
        "TRIGGERS_DB_PASSWORD",
        "PULSE_WRITE_KEY",
        "PULSE_READ_KEY",
        "PULSE_MODEL_SIGNING_KEY",
    )
}


def compose_config(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`docker-compose config` with only `env` set (none of this machine's Pulse or Airflow settings)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: `make test` installs Debian's docker-compose package"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULSE_", "AIRFLOW", "POSTGRES_")) and k not in SECRETS
    }
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--project-directory", str(PROJECT_ROOT), *args, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=PROJECT_ROOT,
    )


def _config(*args: str, **env: str) -> dict:
    done = compose_config(*args, **{**SECRETS, **env})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_validates_and_has_every_service():
    config = _config()
    services = config["services"]
    assert {"postgres", "redis", "airflow-init", "collector", "feature-server"} | AIRFLOW_SERVICES <= set(
        services
    )
    # Celery workers only with the celery profile (docker-compose 1.x lists them in `config` anyway).
    assert services["airflow-worker"]["profiles"] == ["celery"]
    assert services["flower"]["profiles"] == ["celery"]
    assert services["collector"]["command"] == ["pulse", "serve", "--host", "0.0.0.0", "--port", "8000"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/pulse/dags"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/pulse/plugins"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        # The warehouse reaches Pulse and Airflow from one setting.
        assert env["AIRFLOW_CONN_PULSE_WAREHOUSE"] == env["PULSE_DATABASE_URL"]
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_celery_profile_adds_workers_and_switches_the_executor():
    config = _config("--profile", "celery", AIRFLOW_EXECUTOR="CeleryExecutor", AIRFLOW_DB_PASSWORD="s3cret")
    services = config["services"]
    assert {"airflow-worker", "flower"} <= set(services)
    for name in AIRFLOW_SERVICES | {"airflow-worker"}:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "s3cret" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker"]


def test_every_compose_variable_is_documented_in_env_example():
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M))
    assert used - documented == set()
