-- The batch table behind Feast's real-time push source (Feast requires one): created empty, kept for
-- history. Idempotent (run by `pulse up` and before the Feast repo is applied).
create schema if not exists features;

create table if not exists features.customer_realtime_log (
    customer_id          text not null,
    event_timestamp      timestamptz not null,
    last_event_at        timestamptz,
    last_event_name      text,
    events_30m           bigint,
    product_views_30m    bigint,
    cart_value           double precision,
    cart_items           bigint,
    last_viewed_category text
);
