{#-
    A custom incremental strategy (`incremental_strategy='replace_from'`): for every value of
    `replace_key` in the new rows, delete the target's rows whose `replace_from_column` is at or after the
    smallest `_replace_from` of that key's new rows, then insert the new rows.

    Sessions need it: a late event can merge two sessions or split one, so the sessions a visitor had from
    some point on are replaced as a whole (delete+insert on `session_id` would leave the stale ones).
-#}
{% macro get_incremental_replace_from_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set key = config.require("replace_key") -%}
    {%- set column = config.require("replace_from_column") -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}

    delete from {{ target }} as target_rows
    using (
        select {{ key }}, min(_replace_from) as replace_from
        from {{ source }}
        group by {{ key }}
    ) as replaced
    where target_rows.{{ key }} = replaced.{{ key }}
        and target_rows.{{ column }} >= replaced.replace_from;

    insert into {{ target }} ({{ dest_cols_csv }})
    (
        select {{ dest_cols_csv }}
        from {{ source }}
    )
{% endmacro %}
