"""
### pulse_score_audiences

When the online features are fresh (or a new model is trained): scores every customer of the latest
snapshot with the champion model into `ml.scores`, then rebuilds the audiences
(`audiences.audience_members`, with a stable holdout group). Both steps replace the rows of the snapshot
they work on, so a re-run leaves the same rows; the audiences are also exported (`PULSE_HOME/exports/`,
one CSV per audience: treatment members, hashed emails). Last, the HTML report of models, scores,
audiences and lift is written to `PULSE_HOME/reports/pulse_report.html`. Until a model has been trained
(`pulse_train`) the run ends *skipped*, with that message in the log.

Emits `pulse_audiences`.

Calls: `pulse.pipeline.score_customers`, `pulse.pipeline.build_audiences`, `pulse.pipeline.write_report`
(the CLI equivalents are `pulse score`, `pulse audiences --export` and `pulse report`).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pulse.dag_support import (
    AUDIENCES,
    DEFAULT_ARGS,
    MODEL,
    ONLINE_FEATURES,
    START_DATE,
    TAGS,
    data_window,
    publish,
)


@dag(
    dag_id="pulse_score_audiences",
    schedule=(ONLINE_FEATURES | MODEL),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "ml", "audiences"],
)
def pulse_score_audiences():
    @task
    def score() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pulse.pipeline import score_customers

        result = score_customers()
        if result is None:
            raise AirflowSkipException("no trained model yet: trigger pulse_train, then this DAG again")
        return result

    @task(inlets=[ONLINE_FEATURES, MODEL], outlets=[AUDIENCES])  # inlets: see data_window
    def audiences(**context) -> dict:
        from pulse.pipeline import build_audiences

        start, end = data_window(context)
        result = build_audiences()
        publish(context, AUDIENCES, start, end, members=result["members"])
        return result

    @task
    def report() -> dict:
        from pulse.pipeline import write_report

        return write_report()

    score() >> audiences() >> report()


dag_object = pulse_score_audiences()

if __name__ == "__main__":
    dag_object.test()
