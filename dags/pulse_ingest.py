"""
### pulse_ingest

Every 5 minutes (`PULSE_INGEST_SCHEDULE`, a cron expression in UTC: `@daily` for daily file drops),
loads the event files landed in `PULSE_HOME/landing/` before the end of the run's data interval into `raw.events` (bad lines into `raw.events_rejected`, with the reason). A file is first
claimed into `landing/loaded/<interval end>/`, then loaded in one transaction keyed on `messageId`, so
re-running an interval reloads exactly its files and adds nothing.

Emits the `pulse_raw_events` Asset (which triggers `pulse_transform`) only when files were loaded;
an interval with nothing landed ends *skipped*.

Calls: `pulse.pipeline.ingest_window` (the CLI equivalent is `pulse ingest PATH`).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, task

from pulse.config import get_settings
from pulse.dag_support import DEFAULT_ARGS, RAW_EVENTS, START_DATE, TAGS, data_window, publish


@dag(
    dag_id="pulse_ingest",
    schedule=CronDataIntervalTimetable(get_settings().ingest_schedule, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # windows claim files in order
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "ingest"],
)
def pulse_ingest():
    @task(outlets=[RAW_EVENTS])
    def load_landed_files(**context) -> dict:
        from dataclasses import asdict

        from airflow.sdk.exceptions import AirflowSkipException

        from pulse.pipeline import ingest_window

        start, end = data_window(context)
        report = ingest_window(start, end)
        if not report.files:
            raise AirflowSkipException(f"no event files landed before {end.isoformat()}")
        publish(context, RAW_EVENTS, start, end, inserted=report.inserted, rejected=report.rejected)
        return asdict(report)

    load_landed_files()


dag_object = pulse_ingest()

if __name__ == "__main__":
    dag_object.test()
