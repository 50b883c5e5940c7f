"""Deleting the person's entity keys from Feast's online store, PostgreSQL or Redis (see `pulse.forget`)."""

from __future__ import annotations

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.forget.identities import ForgetError, Identities, table_exists
from pulse.forget.warehouse import quoted


def online_views(store) -> list:
    """Every feature view with online values (batch and stream views; a name listed twice counts once)."""
    views = {fv.name: fv for fv in [*store.list_feature_views(), *store.list_stream_feature_views()]}
    return [fv for _, fv in sorted(views.items()) if fv.online]


def _entity_key(customer_id: str):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])


def online_tables(store) -> dict[str, str]:
    """PostgreSQL online store: feature view name -> its `schema.table`."""
    from feast.infra.online_stores.helpers import compute_table_id

    config = store.config
    schema = config.online_store.db_schema or config.online_store.user
    return {fv.name: f"{schema}.{compute_table_id(config.project, fv)}" for fv in online_views(store)}


def _redis_client(settings: Settings):
    import redis

    if not settings.redis_url:
        raise ForgetError("the online store is not Redis (PULSE_REDIS_URL is unset)")
    return redis.Redis.from_url(settings.redis_url)


def forget_online_store(identities: Identities, settings: Settings | None = None) -> int:
    """Delete the person's entity keys from Feast's online store; the number of entries deleted."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key

    from pulse.features.store import feature_store

    settings = settings or get_settings()
    store = feature_store(settings)
    config = store.config
    version = config.entity_key_serialization_version
    keys = [_entity_key(c) for c in identities.customer_ids]
    if not keys:
        return 0
    if config.online_store.type == "redis":
        client = _redis_client(settings)
        return int(client.delete(*(_redis_key(config.project, k, version) for k in keys)))
    serialized = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    deleted = 0
    with engine(settings).begin() as conn:
        for table in online_tables(store).values():
            if table_exists(conn, table):
                deleted += conn.execute(
                    sa.text(f"delete from {quoted(table)} where entity_key = any(:k)"), {"k": serialized}
                ).rowcount
    return deleted
