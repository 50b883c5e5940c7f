"""
### pulse_forget_customer

Right to erasure, triggered by hand (**Trigger DAG** with parameters): give the `customer_id`, or the
`email` the customer used (an email several customers used fails the run unless `confirm_multiple`).
The tasks pass each other only the request id (the run id): no identifier in XCom or the task logs. The run

1. finds every id of theirs: the customer id, ids merged into it by `alias` calls, the anonymous ids of
   the devices they signed in on, the SHA-256 of their email addresses, and keeps them in
   `audit.forget_pending` until step 6 succeeds;
2. waits for any dbt build to end and keeps builds and loads out meanwhile, puts them on the suppression
   list (`raw.forgotten_subjects`, SHA-256s only: their later events are rejected as `forgotten_subject`),
   and deletes their rows, in one transaction, from `raw.events` (with their anonymous browsing),
   `raw.events_rejected`, every dbt model (staging, intermediate, marts, incl. `marts.customer_features`,
   Feast's offline source), Feast's push log, `ml.*` scores, segments and recommendations and every
   `audiences.*` table;
3. deletes their entity key from Feast's online store (PostgreSQL or Redis);
4. removes them from the audience exports and file-drop syncs (wherever they were written, as recorded in
   `audit.export_locations`) and the landed event files, so a re-run of an ingest interval cannot load
   them again;
5. writes an audit row to `audit.forget_requests` (counts, and a SHA-256 of the subject, never the id);
6. looks for them again everywhere: any value left fails the run, listing where it was found.

Every step is idempotent: clearing the run, or triggering it again, deletes nothing more and verifies
again. Aggregates that name no one (product counts, segment profiles, lift) are recomputed by the next
scheduled runs. Airflow keeps the run's parameters in its own metadata database: delete the DAG run
(Browse > DAG Runs) once it has succeeded if that must go too.

Calls: `pulse.forget` (the CLI equivalent is `pulse forget CUSTOMER_ID` or `pulse forget --email ...`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from pulse.dag_support import DEFAULT_ARGS, START_DATE, TAGS


@dag(
    dag_id="pulse_forget_customer",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # erasures queue: two at once would delete from the same tables concurrently
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "privacy"],
    params={
        "customer_id": Param(None, type=["null", "string"], description="The customer id to forget."),
        "email": Param(
            None, type=["null", "string"], description="Or: the email address of the customer to forget."
        ),
        "confirm_multiple": Param(
            False, type="boolean", description="The email matches several customers: forget all of them."
        ),
    },
)
def pulse_forget_customer():
    # Only the request id travels between tasks (XCom) and every task returns counts: no identifier
    # reaches XCom or the task logs. The identifiers wait in audit.forget_pending until verified.
    @task
    def resolve(**context) -> str:
        from pulse.forget import open_request

        params = context["params"]
        request_id = context["run_id"]
        open_request(
            request_id,
            params.get("customer_id") or None,
            params.get("email") or None,
            confirm_multiple=bool(params.get("confirm_multiple")),
        )
        return request_id

    @task
    def forget_warehouse(request_id: str) -> dict:
        from pulse.forget import forget_warehouse, pending

        return forget_warehouse(pending(request_id))

    @task
    def forget_online_store(request_id: str) -> int:
        from pulse.forget import forget_online_store, pending

        return forget_online_store(pending(request_id))

    @task
    def forget_files(request_id: str) -> dict:
        from pulse.forget import forget_files, pending

        return forget_files(pending(request_id))

    @task
    def record_audit(request_id: str, deleted: dict, online_keys: int, files: dict) -> str:
        from pulse.forget import pending, record_audit

        record_audit(request_id, pending(request_id), deleted, online_keys, files)
        return request_id

    @task
    def verify(request_id: str) -> None:
        from pulse.forget import pending, verify

        verify(request_id, pending(request_id))

    request_id = resolve()
    audited = record_audit(
        request_id,
        forget_warehouse(request_id),
        forget_online_store(request_id),
        forget_files(request_id),
    )
    verify(audited)


dag_object = pulse_forget_customer()

if __name__ == "__main__":
    dag_object.test(run_conf={"customer_id": "c000001"})
