{#- Post-hook: let `role` read this model (and its schema) when the role exists (`pulse up --roles`
    creates it; a local setup without roles skips this). dbt replaces the relation on each build, which
    drops its grants, so they are given again here every time. -#}
{% macro grant_select_if_role_exists(role) -%}
    do $grant$
    begin
        if exists (select 1 from pg_roles where rolname = '{{ role }}') then
            execute 'grant usage on schema {{ this.schema }} to {{ role }}';
            execute 'grant select on {{ this }} to {{ role }}';
        end if;
    end
    $grant$
{%- endmacro %}
