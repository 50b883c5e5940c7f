-- Right-to-erasure requests (`pulse forget`, the pulse_forget_customer DAG): what was deleted, when, and
-- whether the final check found anything left. The subject is stored only as a SHA-256 of the customer
-- id or email it was asked for, so the audit trail does not itself keep the identifier.
create schema if not exists audit;

create table if not exists audit.forget_requests (
    request_id      text primary key,        -- the Airflow run id, or cli-<uuid> for `pulse forget`
    subject_kind    text not null,           -- customer_id / email
    subject_sha256  text not null,
    requested_at    timestamptz not null,
    identities      jsonb not null,          -- how many customer ids, anonymous ids, email hashes it covered
    deleted_rows    jsonb not null default '{}'::jsonb,   -- table -> rows deleted
    online_keys     integer not null default 0,           -- online-store entries deleted
    files           jsonb not null default '{}'::jsonb,   -- file -> records removed (exports, landed files)
    status          text not null,           -- deleted / verified / failed
    verified_at     timestamptz,
    remaining       jsonb                    -- what the check still found (empty once verified)
);

-- Where Pulse wrote personal data outside the warehouse (audience exports, file-drop syncs): a file or a
-- folder of them, wherever it is. `pulse forget` removes the person from every one (pulse.exports).
create table if not exists audit.export_locations (
    location    text primary key,        -- an absolute path: a file, or a folder of .csv / .jsonl files
    written_by  text not null,           -- e.g. 'audience export', 'sync crm_drop'
    written_at  timestamptz not null default now()
);

-- A forget request's identifiers while it is carried out by the pulse_forget_customer DAG, whose tasks
-- pass only the request id between them (never an identifier through XCom or the logs). Deleted once the
-- request is verified.
create table if not exists audit.forget_pending (
    request_id  text primary key,
    identities  jsonb not null
);
