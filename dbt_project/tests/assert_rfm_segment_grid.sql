-- The named RFM segments cover the whole grid of recency x (frequency + monetary) / 2 scores exactly as
-- documented: returns the cells where the macro disagrees with the table below.
with

expected (recency_score, fm_score, segment) as (

    values
    (5, 5, 'champions'),
    (5, 4, 'champions'),
    (5, 3, 'potential loyalists'),
    (5, 2, 'potential loyalists'),
    (5, 1, 'new'),
    (4, 5, 'champions'),
    (4, 4, 'champions'),
    (4, 3, 'potential loyalists'),
    (4, 2, 'potential loyalists'),
    (4, 1, 'new'),
    (3, 5, 'loyal'), (3, 4, 'loyal'), (3, 3, 'loyal'), (3, 2, 'hibernating'), (3, 1, 'hibernating'),
    (2, 5, 'can''t lose'), (2, 4, 'at risk'), (2, 3, 'at risk'), (2, 2, 'hibernating'), (2, 1, 'hibernating'),
    (1, 5, 'can''t lose'), (1, 4, 'at risk'), (1, 3, 'at risk'), (1, 2, 'lost'), (1, 1, 'lost')

),

final as (

    select
        recency_score,
        fm_score,
        segment,
        {{ rfm_segment('recency_score', 'fm_score') }} as computed_segment
    from expected

)

select * from final
where computed_segment is distinct from segment
