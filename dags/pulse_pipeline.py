"""
### Pulse pipeline

Loads the event files landed in `PULSE_HOME/landing/`, rebuilds the dbt marts, refreshes the Feast
stores, trains the purchase-propensity model, scores every customer and rebuilds the `likely_buyers`
audience. Each task is one call into the `pulse` library; the same steps are the `pulse` CLI verbs.

Output: `raw.events`, `marts.customer_features`, `ml.model_runs`, `ml.scores`,
`audiences.audience_members` in the warehouse (`PULSE_DATABASE_URL`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from airflow.sdk import dag, task

DEFAULT_ARGS = {"owner": "pulse", "retries": 2, "retry_delay": timedelta(minutes=1)}


@dag(
    dag_id="pulse_pipeline",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["pulse"],
)
def pulse_pipeline():
    # Imports live inside the tasks: the scheduler parses this file every 30 s and must stay light.

    @task
    def ingest() -> dict:
        from pulse.pipeline import ingest_landed_files

        return asdict(ingest_landed_files())

    @task
    def build() -> int:
        from pulse.transform import build as dbt_build

        return len(dbt_build())

    @task
    def features() -> str:
        from pulse.features.store import refresh

        return refresh().end.isoformat()

    @task
    def train() -> dict:
        from pulse.modeling.train import train as fit

        result = fit()
        return {"run_id": result.run.run_id, **result.metrics}

    @task
    def score() -> int:
        from pulse.scoring import score as run_scoring

        return run_scoring().n_scored

    @task
    def audiences() -> dict:
        from pulse.audiences import build_audience

        return asdict(build_audience())

    ingest() >> build() >> features() >> train() >> score() >> audiences()


pulse_pipeline()

if __name__ == "__main__":
    pulse_pipeline().test()
