import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulse.config import PROJECT_ROOT

# Airflow's plugins folder is the project's (as `pulse airflow` and docker-compose set it); set before
# Airflow is first imported in this process.
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
# A busy CI machine (two test workers on two cores) can take longer than Airflow's 30 s default to import
# a DAG file; a timeout there would fail the test for the machine's load, not for the DAG.
os.environ.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "180")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate this test process's private Airflow metadata database (SQLite under AIRFLOW_HOME) once."""
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    from pulse.transform import dbt_manifest

    dbt_manifest()  # `dbt parse` once, outside the DAG import timeout
    # These DAGs run under `dag.test()`, one task at a time in this process, where cosmos' watcher mode
    # (the default) cannot run: a model's watcher may start before the producer and wait for it forever.
    # The tests that start a scheduler (Celery, backfill, the UI) run the default mode.
    mode = os.environ.get("PULSE_DBT_EXECUTION_MODE")
    os.environ["PULSE_DBT_EXECUTION_MODE"] = "local"
    try:
        return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    finally:
        if mode is None:
            del os.environ["PULSE_DBT_EXECUTION_MODE"]
        else:
            os.environ["PULSE_DBT_EXECUTION_MODE"] = mode
