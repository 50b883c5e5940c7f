"""
### pulse_activate

After the audiences are rebuilt (the `pulse_audiences` Asset), pushes each audience to the tools
marketers use: one mapped task per enabled sync in `campaigns/syncs/*.yml`. Each sync sends only the
diff since what its destination last accepted (`activation.sync_state`), retries 429 / 5xx honouring
`Retry-After`, isolates rows the destination refuses, and logs every run and row in
`activation.sync_runs` / `activation.sync_records` (a run with a rejected row is `partial`; the task
still succeeds, the rows are carried into the next run). A sync killed midway resumes on retry without
resending what was acknowledged.

Trigger it by hand from the UI with params: `sync` (one sync's name; empty: all enabled) and `dry_run`
(plan and log, send nothing).

Calls: `pulse.activation.engine.sync_names`, `pulse.activation.engine.run_syncs` (the CLI equivalent is
`pulse sync [NAME] [--dry-run]`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from pulse.dag_support import AUDIENCES, DEFAULT_ARGS, START_DATE, TAGS


@dag(
    dag_id="pulse_activate",
    schedule=[AUDIENCES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "activation"],
    params={
        "sync": Param("", type=["null", "string"], description="One sync to run; empty: every enabled sync."),
        "dry_run": Param(False, type="boolean", description="Plan and log only; send nothing."),
    },
)
def pulse_activate():
    @task
    def syncs(**context) -> list[str]:
        from pulse.activation.engine import sync_names

        chosen = (context["params"].get("sync") or "").strip()
        return [chosen] if chosen else sync_names()

    @task(map_index_template="{{ sync_name }}")
    def run(name: str) -> dict:
        from airflow.sdk import get_current_context

        from pulse.activation.engine import run_syncs

        context = get_current_context()
        context["sync_name"] = name  # the mapped task's label in the UI (map_index_template)

        (result,) = run_syncs(name, dry_run=bool(context["params"].get("dry_run")))
        return result.as_dict()  # counts only: no personal data in XCom

    run.expand(name=syncs())


dag_object = pulse_activate()

if __name__ == "__main__":
    dag_object.test()
