"""
### pulse_forget_customer

Right to erasure, triggered by hand (**Trigger DAG** with parameters): give the `customer_id`, or the
`email` the customer used. The run

1. finds every id of theirs: the customer id, ids merged into it by `alias` calls, the anonymous ids of
   the devices they signed in on, the SHA-256 of their email addresses;
2. deletes their rows, in one transaction, from `raw.events` (with their anonymous browsing),
   `raw.events_rejected`, every dbt model (staging, intermediate, marts, incl. `marts.customer_features`,
   Feast's offline source), Feast's push log, `ml.*` scores, segments and recommendations and every
   `audiences.*` table;
3. deletes their entity key from Feast's online store (PostgreSQL or Redis);
4. removes them from the audience exports (`PULSE_HOME/exports`) and the landed event files, so a re-run
   of an ingest interval cannot load them again;
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
    },
)
def pulse_forget_customer():
    @task
    def resolve(**context) -> dict:
        from pulse.forget import resolve as find_ids

        params = context["params"]
        identities = find_ids(params.get("customer_id") or None, params.get("email") or None)
        return identities.to_dict()

    @task
    def forget_warehouse(identities: dict) -> dict:
        from pulse.forget import Identities, forget_warehouse

        return forget_warehouse(Identities.from_dict(identities))

    @task
    def forget_online_store(identities: dict) -> int:
        from pulse.forget import Identities, forget_online_store

        return forget_online_store(Identities.from_dict(identities))

    @task
    def forget_files(identities: dict) -> dict:
        from pulse.forget import Identities, forget_files

        return forget_files(Identities.from_dict(identities))

    @task
    def record_audit(identities: dict, deleted: dict, online_keys: int, files: dict, **context) -> str:
        from pulse.forget import Identities, record_audit

        request_id = context["dag_run"].run_id
        record_audit(request_id, Identities.from_dict(identities), deleted, online_keys, files)
        return request_id

    @task
    def verify(request_id: str, identities: dict) -> None:
        from pulse.forget import Identities, verify

        verify(request_id, Identities.from_dict(identities))

    identities = resolve()
    request_id = record_audit(
        identities,
        forget_warehouse(identities),
        forget_online_store(identities),
        forget_files(identities),
    )
    verify(request_id, identities)


dag_object = pulse_forget_customer()

if __name__ == "__main__":
    dag_object.test(run_conf={"customer_id": "c000001"})
