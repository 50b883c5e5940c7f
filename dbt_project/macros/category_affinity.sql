{#-
    Category affinity from the per-category 90-day product-view columns of `relation`: the top category
    (ties: first in the `affinity_categories` var's order) and its share of those views. Null without
    product views in the window.
-#}
{% macro category_affinity(relation, categories) -%}
    {%- set total -%}
        ({% for category in categories %}{{ relation }}.product_views_90d_{{ category }}{{ " + " if not loop.last }}{% endfor %})
    {%- endset -%}
    {%- set top -%}
        greatest({% for category in categories %}{{ relation }}.product_views_90d_{{ category }}{{ ", " if not loop.last }}{% endfor %})
    {%- endset -%}
    case
        {%- for category in categories %}
        when {{ total }} > 0 and {{ relation }}.product_views_90d_{{ category }} = {{ top }}
            then '{{ category }}'
        {%- endfor %}
    end as top_category_90d,
    case when {{ total }} > 0 then {{ top }}::double precision / {{ total }} end as top_category_share_90d
{%- endmacro %}
