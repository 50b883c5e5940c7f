{#- 0..99, stable for an (audience, customer) pair: the holdout is bucket < holdout_pct. A hash of both
    names, so a customer keeps its group in an audience across runs and draws independently per audience. -#}
{% macro holdout_bucket(audience_name, customer_id) -%}
    ((('x' || substr(md5({{ audience_name }} || ':' || {{ customer_id }}), 1, 8))::bit(32)::bigint) % 100)
{%- endmacro %}
