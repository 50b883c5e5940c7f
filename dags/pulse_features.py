"""
### pulse_features

When the marts are rebuilt, applies `feature_repo/` to Feast (SQL registry in the warehouse) and brings
the online store to its state as of the end of the data window: each customer's newest snapshot in
`marts.customer_features` before that time. The same window always writes the same values.

Emits `pulse_online_features` (which triggers `pulse_score_audiences`).

Calls: `pulse.pipeline.materialize_features` (the CLI equivalent is `pulse features`).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pulse.dag_support import DEFAULT_ARGS, MARTS, ONLINE_FEATURES, START_DATE, TAGS, data_window, publish


@dag(
    dag_id="pulse_features",
    schedule=[MARTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "feast"],
)
def pulse_features():
    @task(inlets=[MARTS], outlets=[ONLINE_FEATURES])  # inlets: see data_window
    def materialize(**context) -> dict:
        from pulse.pipeline import materialize_features

        start, end = data_window(context)
        result = materialize_features(start, end)
        publish(context, ONLINE_FEATURES, start, end)
        return result

    materialize()


dag_object = pulse_features()

if __name__ == "__main__":
    dag_object.test()
