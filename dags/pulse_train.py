"""
### pulse_train

Weekly (Mondays 04:00 UTC; `PULSE_TRAIN_SCHEDULE`, cron) and on demand (trigger it from the UI): trains
every prediction task (`pulse.modeling.tasks`) on a rolling time-split backtest of the point-in-time feature snapshots (Feast
offline store), with BG/NBD beside the candidates, and records every run and its metrics in
`ml.model_runs` / `ml.model_metrics`. A challenger replaces a task's champion only when it beats it by a
margin; a task without enough data keeps a baseline champion and the run says why.

Trains once per data interval: a re-run of an interval that already has its model (a retry, a cleared
task) returns that model and changes nothing. A manual trigger is a new interval, so it always trains.

Emits `pulse_model` (which triggers `pulse_score_audiences`).

Calls: `pulse.pipeline.train_window` (the CLI equivalent is `pulse train`).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from pulse.config import get_settings
from pulse.dag_support import DEFAULT_ARGS, MODEL, START_DATE, TAGS, data_window, publish


@dag(
    dag_id="pulse_train",
    schedule=CronDataIntervalTimetable(get_settings().train_schedule, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "ml"],
)
def pulse_train():
    @task(outlets=[MODEL])
    def train(**context) -> dict:
        from pulse.pipeline import train_window

        start, end = data_window(context)
        result = train_window(start, end)
        publish(context, MODEL, start, end, trained=result["trained"])
        return result

    train()


dag_object = pulse_train()

if __name__ == "__main__":
    dag_object.test()
