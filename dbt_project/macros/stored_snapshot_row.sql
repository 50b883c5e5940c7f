{#-
    customer_features' stored row for `row_alias`'s customer and snapshot day, as the body of a lateral
    subquery: one lookup in the unique (customer_id, snapshot_date) index per row. `limit 1` (the key is
    unique, so it changes nothing) keeps PostgreSQL from flattening it into a join, which it would plan as
    a scan of every stored snapshot: it cannot know how few rows an incremental run recomputes.
-#}
{% macro stored_snapshot_row(relation, row_alias, columns) -%}
    select {{ columns }}
        from {{ relation }} as stored_row
        where stored_row.customer_id = {{ row_alias }}.customer_id
            and stored_row.snapshot_date = {{ row_alias }}.snapshot_date
        limit 1
{%- endmacro %}
