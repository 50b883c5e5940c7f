"""Run Pulse's DAGs one after another with `dag.test()` and print each run's wall time as JSON.

    python bench/pipeline/airflow_chain.py LOGICAL_DATE DAG_ID [DAG_ID ...]

The child process of bench/pipeline/run.py: it expects AIRFLOW_HOME (with a migrated metadata
database), the DAGs folder and the warehouse in its environment. Reading the DAGs (the DagBag, which
renders the transform DAG from dbt's manifest) is timed apart: a scheduler does it once, not per run.
Fails when a run or any of its tasks did not succeed (`dag.test()` itself only logs task failures).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime


def main() -> None:
    logical_date = datetime.fromisoformat(sys.argv[1])
    # A loaded machine can take more than Airflow's default 30 s to import the transform DAG (cosmos).
    os.environ.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "600")
    # dag.test() cannot run cosmos' watcher mode (the default; it needs a scheduler and triggerer), so the
    # transform DAG runs a dbt build per model here: bench/transform --scheduler compares the two modes.
    os.environ["PULSE_DBT_EXECUTION_MODE"] = "local"
    started = time.perf_counter()
    from pulse.transform import dbt_manifest

    dbt_manifest()  # what `pulse airflow` does before the scheduler starts: `dbt parse` when stale
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dagbag.import_errors:
        raise SystemExit(f"DAG import errors: {dagbag.import_errors}")
    timings = {"read DAGs": time.perf_counter() - started}
    for dag_id in sys.argv[2:]:
        started = time.perf_counter()
        run = dagbag.dags[dag_id].test(logical_date=logical_date)
        timings[dag_id] = time.perf_counter() - started
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        if run.state != "success" or set(states.values()) != {"success"}:
            raise SystemExit(f"{dag_id} did not succeed: {run.state} {states}")
        timings[f"{dag_id} tasks"] = len(states)
    print("TIMINGS " + json.dumps(timings))


if __name__ == "__main__":
    main()
