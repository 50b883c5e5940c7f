"""Right to erasure: delete one customer from every table, the online store and Pulse's files, then check.

A request names a customer id or an email address. `resolve` turns it into every identifier that person
has in the warehouse: their customer ids (with the ids `alias` calls merged into them, and `sha256:<hex>`,
the form a user id that was an email is stored in), the anonymous ids of the devices they signed in on,
and the SHA-256 of their email addresses (wherever an `email_sha256` field sits in an event). An email
that more than one customer used is reported and forgotten only when the request confirms it. Then:

- `forget_warehouse` holds the marts lock exclusively (no build runs meanwhile, so none rebuilds a mart
  row from events it read before they were deleted) and the raw-events lock (no load interleaves), puts
  SHA-256s of their ids and email hashes on the suppression list (`raw.forgotten_subjects`: their later
  events are rejected at every load, reason `forgotten_subject`) and deletes, in one transaction, their events from `raw.events` (signed-in events, and the
  anonymous events of their devices), rejects whose payload names them, and every row of every table in
  Pulse's schemas (dbt models, Feast's offline source and push log, scores, segments, recommendations,
  audiences, membership history) that carries one of their ids, their email hash, or one of the deleted
  events. Aggregates that name no one (product counts, segment profiles, lift) are recomputed by the
  next scheduled run.
- `forget_online_store` deletes their entity key from Feast's online store (PostgreSQL or Redis). Feast
  has no per-entity delete, so this writes the keys Feast's own stores use.
- `forget_files` removes their rows from audience exports and file-drop syncs (wherever they were
  written: `audit.export_locations`) and their records from landed and archived event files (a file that
  held only their event is deleted), so re-running an ingest interval cannot bring them back.
- `verify` looks again: every text and JSON value of every table in those schemas, the online store
  (through `get_online_features`) and the files. Anything left is listed, and the request fails.

The audit row (`audit.forget_requests`) keeps counts and a SHA-256 of the subject, never the identifier.
The Airflow DAG passes only the request id between its tasks; the identifiers wait in
`audit.forget_pending` until the request is verified. Not covered (documented in the README): a running
collector's in-memory real-time state (it holds minutes of activity), and the identifiers Airflow keeps in
its own metadata (the run's params).
"""

from pulse.forget.files import forget_files
from pulse.forget.identities import (
    AmbiguousSubjectError,
    ForgetError,
    Identities,
    check_unambiguous,
    resolve,
)
from pulse.forget.online import forget_online_store
from pulse.forget.requests import ForgetResult, forget, open_request, pending
from pulse.forget.verify import record_audit, remaining, verify
from pulse.forget.warehouse import DATA_SCHEMAS, forget_warehouse

__all__ = [
    "DATA_SCHEMAS",
    "AmbiguousSubjectError",
    "ForgetError",
    "ForgetResult",
    "Identities",
    "check_unambiguous",
    "forget",
    "forget_files",
    "forget_online_store",
    "forget_warehouse",
    "open_request",
    "pending",
    "record_audit",
    "remaining",
    "resolve",
    "verify",
]
