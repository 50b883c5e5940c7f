{#-
    The stored rows of an incremental mart, as the mart and its "this run" scratch models read them: the
    mart's table when this build runs it incrementally (what `is_incremental()` decides inside the mart),
    otherwise (its first build, or `--full-refresh`) an empty relation with the columns of its enforced
    contract. One SQL then serves both builds: a full build is an incremental one with nothing stored, so
    everything is selected. Inside the mart, pass `incremental=is_incremental()`; a scratch model
    (ephemeral, so compiled into the mart while the mart's table still holds the previous build) leaves it
    unset, and the mart's table and the build's flags decide, as they decide `is_incremental()`.
-#}
{% macro stored_rows(model_name, incremental=none) -%}
    {%- if not execute -%}
        {{ return("(select null limit 0)") }}
    {%- endif -%}
    {%- if incremental -%}
        {{ return(this) }}
    {%- endif -%}
    {%- set node = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', model_name) | first -%}
    {%- if incremental is none -%}
        {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- set full_refresh = node.config.full_refresh if node.config.full_refresh is not none else flags.FULL_REFRESH -%}
        {%- if relation is not none and relation.is_table and not full_refresh -%}
            {{ return(relation) }}
        {%- endif -%}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- do columns.append("null::" ~ column.data_type ~ " as " ~ column.name) -%}
    {%- endfor -%}
    {{ return("(select " ~ columns | join(", ") ~ " limit 0)") }}
{%- endmacro %}
