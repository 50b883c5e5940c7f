-- Least-privilege roles, one per job (`pulse up --roles`; idempotent; run as the warehouse owner after
-- the schemas exist). They cannot log in: grant them to login users (pulse.roles makes the compose
-- stack's). Roles belong to the server, grants to this database.
--   pulse_collector  INSERT into raw.events / raw.events_rejected, nothing else (it reads no row)
--   pulse_transform  the pipeline: dbt, Feast, train, score, audiences, syncs, forget
--   pulse_scoring    the scoring API: read ml and the online store (and Feast's registry)
--   pulse_triggers   the trigger worker: reads committed collector events (the columns it evaluates),
--                    its activation tables, scores and consent
--   pulse_audience   marketing tools: read audiences.audience_inputs only
do $$
declare
    role_name text;
begin
    foreach role_name in array array['pulse_collector', 'pulse_transform', 'pulse_scoring', 'pulse_triggers', 'pulse_audience'] loop
        if not exists (select 1 from pg_roles where rolname = role_name) then
            begin
                execute format('create role %I nologin', role_name);
            exception when duplicate_object or unique_violation then
                null;  -- another session created it meanwhile
            end;
        end if;
    end loop;
end
$$;

-- Schemas the pipeline's tools create into: Feast's online store, dbt's layers.
create schema if not exists feast_online;
do $$
begin
    execute format('grant create, temporary on database %I to pulse_transform', current_database());
    execute format('revoke create on database %I from public', current_database());
end
$$;

-- The pipeline owns Pulse's schemas and what is in them, so it can upgrade them (`pulse.db.create_schemas`
-- runs inside its jobs) and replace dbt's relations; the login that ran `pulse up` keeps only what a
-- superuser has.
do $$
declare
    obj record;
begin
    for obj in select nspname from pg_namespace
               where nspname in ('raw', 'ml', 'audiences', 'activation', 'audit', 'features', 'feast_online')
                 and pg_get_userbyid(nspowner) <> 'pulse_transform' loop
        execute format('alter schema %I owner to pulse_transform', obj.nspname);
    end loop;
    for obj in select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname in ('raw', 'ml', 'audiences', 'activation', 'audit', 'features', 'feast_online')
                 and c.relkind in ('r', 'p', 'v', 'm', 'S') and pg_get_userbyid(c.relowner) <> 'pulse_transform'
                 -- a serial's sequence moves with its table
                 and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                                 and d.objid = c.oid and d.deptype in ('a', 'i')) loop
        execute format(
            'alter %s %I.%I owner to pulse_transform',
            case obj.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence' else 'table' end,
            obj.nspname, obj.relname
        );
    end loop;
    for obj in select p.oid::regprocedure as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where n.nspname = 'raw' and pg_get_userbyid(p.proowner) <> 'pulse_transform' loop
        execute format('alter function %s owner to pulse_transform', obj.fn);
    end loop;
end
$$;

-- pulse_collector: COPY / INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key needs the key column
-- readable; no other column is.
grant usage on schema raw to pulse_collector;
grant insert on raw.events, raw.events_rejected to pulse_collector;
grant select (event_id) on raw.events to pulse_collector;
grant select (rejected_id) on raw.events_rejected to pulse_collector;
grant select on raw.events_shape to pulse_collector;  -- no rows: the shape of its staging temp table

-- pulse_transform: it owns the above; Feast's registry lives in public.
grant usage, create on schema public to pulse_transform;
grant select, insert, update, delete on all tables in schema public to pulse_transform;

-- pulse_scoring: the model registry and scores, the online store and Feast's registry (in public),
-- including tables the pipeline creates later.
grant usage on schema ml, feast_online, public to pulse_scoring;
grant select on all tables in schema ml, feast_online, public to pulse_scoring;
alter default privileges for role pulse_transform in schema ml, feast_online, public
    grant select on tables to pulse_scoring;

-- pulse_triggers: its own tables (activation.trigger_*, sync_runs rows of its sends), scores; dbt grants
-- marts.customers and marts.customer_consent on each build (macro grant_select_if_role_exists).
grant usage on schema activation, ml, raw to pulse_triggers;
-- The trigger worker reads the collector's events: the columns it evaluates, not traits or device ids.
grant select (event_id, event_type, event_name, user_id, event_at, received_at, properties, context, source,
              loaded_at, xact_id) on raw.events to pulse_triggers;
grant select on ml.scores, ml.model_runs to pulse_triggers;
do $$
declare
    t record;
begin
    for t in select schemaname, tablename from pg_tables
             where schemaname = 'activation' and (tablename like 'trigger%' or tablename = 'sync_runs') loop
        execute format('grant select, insert, update, delete on %I.%I to pulse_triggers', t.schemaname, t.tablename);
    end loop;
end
$$;
grant usage, select on all sequences in schema activation to pulse_triggers;

-- pulse_audience: one view (dbt re-grants it on each build, as it recreates it).
grant usage on schema audiences to pulse_audience;
do $$
begin
    if to_regclass('audiences.audience_inputs') is not null then
        grant select on audiences.audience_inputs to pulse_audience;
    end if;
end
$$;
