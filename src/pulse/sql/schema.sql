-- Tables Pulse writes outside dbt. Idempotent: `pulse up` runs this every time.
create schema if not exists raw;
create schema if not exists ml;
create schema if not exists audiences;

-- One row per accepted event; message_id (Segment's messageId) is the idempotency key.
create table if not exists raw.events (
    event_id     text primary key,
    event_type   text not null,            -- track / identify / page / screen / alias / group
    event_name   text not null,            -- normalised: 'order_completed', 'page', 'identify', ...
    user_id      text,
    anonymous_id text,
    event_at     timestamptz not null,     -- when it happened (UTC)
    sent_at      timestamptz,
    received_at  timestamptz not null,
    properties   jsonb not null default '{}'::jsonb,
    traits       jsonb not null default '{}'::jsonb,
    context      jsonb not null default '{}'::jsonb,
    source       text not null,            -- file path or 'collector'
    loaded_at    timestamptz not null default now()
);
-- Added after the first release (kept additive so existing warehouses upgrade in place):
alter table raw.events add column if not exists previous_id text;         -- alias calls: the old id
alter table raw.events add column if not exists original_at timestamptz;  -- client clock, before skew correction
-- The writing transaction's id, so the trigger worker reads each committed collector event once, in
-- commit-safe order (pulse.triggers.stream). Added without a default first (no rewrite of existing rows;
-- theirs stay null: the worker starts at its first run), then every new row takes its transaction's id.
-- Checked in the catalog first, so a warehouse that has it takes no table lock here.
do $$
begin
    if not exists (select 1 from pg_attribute where attrelid = 'raw.events'::regclass
                   and attname = 'xact_id' and not attisdropped) then
        alter table raw.events add column xact_id xid8;
    end if;
    if not exists (select 1 from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
                   where d.adrelid = 'raw.events'::regclass and a.attname = 'xact_id') then
        alter table raw.events alter column xact_id set default pg_current_xact_id();
    end if;
end
$$;
-- raw.events' columns without its rows: what writers copy the shape of for their staging temp table, so
-- a role that may only INSERT into raw.events (pulse_collector) needs to read nothing else. Replaced on
-- every `pulse up`, after the columns above, so it follows raw.events.
create or replace view raw.events_shape as select * from raw.events where false;
create index if not exists events_event_at_idx on raw.events (event_at);
create index if not exists events_loaded_at_idx on raw.events (loaded_at);
-- The trigger worker's reads: only the collector's rows (a bulk file load adds nothing to it).
create index if not exists events_xact_idx on raw.events (xact_id) where source = 'collector';

-- Deletions from raw.events (a retention job, a reload), logged by the triggers below so the next dbt
-- build empties its incremental models and rebuilds them instead of keeping rows of events that are gone
-- (dbt_project/macros/reset_incremental_models.sql reads the log and empties it). `pulse forget` deletes
-- the same events from the models in its own transaction and says so (`pulse.consistent_delete`), so its
-- deletions are not logged and the next build stays incremental.
create table if not exists raw.events_deletions (
    deleted_at timestamptz not null default clock_timestamp(),
    operation  text not null,              -- 'delete' or 'truncate'
    deleted    bigint                      -- rows, for a delete
);
do $$
begin
    if to_regproc('raw.log_events_deletion') is null then
        create function raw.log_events_deletion() returns trigger language plpgsql as $body$
        begin
            if coalesce(current_setting('pulse.consistent_delete', true), '') <> 'on' then
                if tg_op = 'TRUNCATE' then
                    insert into raw.events_deletions (operation) values ('truncate');
                else
                    insert into raw.events_deletions (operation, deleted)
                    select 'delete', count(*) from gone having count(*) > 0;
                end if;
            end if;
            return null;
        end
        $body$;
    end if;
    if not exists (select 1 from pg_trigger where tgrelid = 'raw.events'::regclass and tgname = 'events_deleted') then
        create trigger events_deleted after delete on raw.events referencing old table as gone
            for each statement execute function raw.log_events_deletion();
    end if;
    if not exists (select 1 from pg_trigger where tgrelid = 'raw.events'::regclass and tgname = 'events_truncated') then
        create trigger events_truncated after truncate on raw.events
            for each statement execute function raw.log_events_deletion();
    end if;
end
$$;

-- Everything that failed validation, with why and where from. rejected_id hashes source + payload so a
-- replayed file adds no duplicate rejects.
create table if not exists raw.events_rejected (
    rejected_id text primary key,
    payload     text not null,
    reason      text not null,
    source      text not null,
    line_number integer,
    rejected_at timestamptz not null default now()
);

-- ml.* tables: sql/ml.sql; audiences.* tables: sql/audiences.sql.

-- The suppression list of forgotten people (`pulse forget`): SHA-256s only, never an identifier. `id`: the
-- SHA-256 of a customer id or anonymous id; `email`: the SHA-256 of an email hash (`email_sha256`).
-- Every load into raw.events rejects their later events with reason `forgotten_subject`
-- (pulse.events.load), so a client that keeps sending does not bring them back.
create table if not exists raw.forgotten_subjects (
    subject_sha256 text not null,
    kind           text not null check (kind in ('id', 'email')),
    forgotten_at   timestamptz not null default now(),
    primary key (subject_sha256, kind)
);

-- The rows the calling transaction loaded (loaded_at defaults to its start) of forgotten people, moved to
-- the rejects with nothing of theirs but the event id. Security definer: the collector's role, which
-- reads no row, calls it at the end of every load (pulse.events.load). Not a deletion the next dbt build
-- must rebuild for: no build has seen these rows (`pulse.consistent_delete`).
do $$
begin
    if to_regproc('raw.reject_forgotten') is null then
        create function raw.reject_forgotten() returns integer language plpgsql security definer
            set search_path = pg_catalog, pg_temp as $body$
        declare
            moved integer;
        begin
            if not exists (select 1 from raw.forgotten_subjects) then
                return 0;
            end if;
            perform set_config('pulse.consistent_delete', 'on', true);
            with forgotten as (select subject_sha256, kind from raw.forgotten_subjects),
            gone as (
                delete from raw.events e
                where e.loaded_at = now() and (
                    encode(sha256(convert_to(e.user_id, 'UTF8')), 'hex')
                        in (select subject_sha256 from forgotten where kind = 'id')
                    or (e.user_id is null and encode(sha256(convert_to(e.anonymous_id, 'UTF8')), 'hex')
                        in (select subject_sha256 from forgotten where kind = 'id'))
                    or exists (
                        select 1
                        from jsonb_path_query(jsonb_build_array(e.traits, e.context, e.properties),
                                              'strict $.**.email_sha256') as h(v)
                        where encode(sha256(convert_to(v #>> '{}', 'UTF8')), 'hex')
                            in (select subject_sha256 from forgotten where kind = 'email')
                    )
                )
                returning e.event_id, e.event_type, e.source
            )
            insert into raw.events_rejected (rejected_id, payload, reason, source, line_number)
            select encode(sha256(convert_to('forgotten_subject' || chr(31) || event_id, 'UTF8')), 'hex'),
                   json_build_object('messageId', event_id, 'type', event_type)::text, 'forgotten_subject',
                   source, null
            from gone
            on conflict (rejected_id) do nothing;
            get diagnostics moved = row_count;
            perform set_config('pulse.consistent_delete', '', true);
            return moved;
        end
        $body$;
    end if;
end
$$;
