"""Bulk materialisation: the rows Feast's `materialize` would write, written 20-50x faster.

Feast reads the window's rows, keeps each entity's newest (`pull_all_from_table_or_query` + dedup), turns
every value into a protobuf object in Python and writes them through the online store's
`online_write_batch`. Here the same three steps run in bulk:

1. read: one `distinct on` query per view (newest row per entity with a timestamp in [start, end], ties
   broken by the created timestamp as Feast does), streamed with COPY into Arrow;
2. encode: whole columns at once (`pulse.features.encoding`, checked byte for byte against Feast);
3. write: the keys and fields Feast writes. Redis: one HSET per entity of every feature (`mmh3` of
   "view:feature") and `_ts:<view>`, skipping entities whose stored `_ts` is not older (as Feast's Redis
   store does), as raw pipelined commands. PostgreSQL: COPY into a temporary table, then the same upsert
   as Feast's PostgreSQL store.

Only the common case takes this path (a PostgreSQL source without field mapping, one string join key,
scalar int/float/string/bool features, a plain Redis or PostgreSQL online store); `supports` says so and
`pulse.features.store.materialize` hands anything else to Feast. After writing, the registry records the
materialised interval, as Feast does.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from feast import FeatureView
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg import sql

from pulse.features.encoding import (
    SUPPORTED_TYPES,
    Groups,
    binary_groups,
    constant_groups,
    entity_key_prefix,
    has_value,
    join_rows,
    repeated,
    value_groups,
    wrap,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000  # entities per round trip: bounds memory (about 1.5 KB per entity of 60 features)
TS_COLUMN = "_pulse_ts_us"
_ARROW_TYPES = {
    ValueType.INT64: pa.int64(),
    ValueType.INT32: pa.int32(),
    ValueType.DOUBLE: pa.float64(),
    ValueType.FLOAT: pa.float32(),
    ValueType.STRING: pa.large_string(),
    ValueType.BOOL: pa.bool_(),
}


def _value_types(view: FeatureView) -> dict[str, ValueType]:
    return {f.name: f.dtype.to_value_type() for f in view.features}


def supports(store, view: FeatureView) -> bool:
    """Whether `view` can be bulk loaded into `store`'s online store (else Feast's own path is used)."""
    config = store.config
    online = config.online_store
    source = view.batch_source
    if not isinstance(source, PostgreSQLSource):
        return False
    entity_columns = view.entity_columns
    plain_online = (online.type == "redis" and online.redis_type == "redis") or (
        online.type == "postgres"
        and not online.vector_enabled
        and not getattr(online, "enable_openai_compatible_store", False)
        and not source.created_timestamp_column  # Feast's PostgreSQL store would also write created_ts
    )
    return (
        plain_online
        and not config.registry.enable_online_feature_view_versioning
        and config.entity_key_serialization_version == 3
        and not source.field_mapping
        and len(entity_columns) == 1
        and entity_columns[0].dtype.to_value_type() == ValueType.STRING
        and all(t in SUPPORTED_TYPES for t in _value_types(view).values())
    )


def latest_rows(store, view: FeatureView, start: datetime, end: datetime) -> Iterator[pa.Table]:
    """Each entity's newest row with a timestamp in [start, end]: join key, `TS_COLUMN` (microseconds
    since the epoch), then the view's features; in tables of up to CHUNK_ROWS rows, yielded as they
    arrive, so the online store is written while PostgreSQL still sends."""
    source = view.batch_source
    if not isinstance(source, PostgreSQLSource):
        raise TypeError(f"{view.name}: bulk loading reads a PostgreSQLSource (see `supports`)")
    join_key = view.entity_columns[0].name
    features = _value_types(view)
    order = [sql.SQL("a.{} desc").format(sql.Identifier(source.timestamp_field))]
    if source.created_timestamp_column:
        order.append(sql.SQL("a.{} desc").format(sql.Identifier(source.created_timestamp_column)))
    query = sql.SQL(
        "copy (select distinct on (a.{key}) a.{key}, (extract(epoch from a.{ts}) * 1000000)::bigint, {cols} "
        "from {source} a where a.{ts} between {start} and {end} order by a.{key}, {order}) "
        "to stdout (format csv)"
    ).format(
        key=sql.Identifier(join_key),
        ts=sql.Identifier(source.timestamp_field),
        cols=sql.SQL(", ").join(sql.SQL("a.{}").format(sql.Identifier(f)) for f in features),
        source=sql.SQL(source.get_table_query_string()),
        start=sql.Literal(start),
        end=sql.Literal(end),
        order=sql.SQL(", ").join(order),
    )
    types = {join_key: pa.large_string(), TS_COLUMN: pa.int64()}
    types |= {name: _ARROW_TYPES[t] for name, t in features.items()}
    options = {
        "read_options": pa_csv.ReadOptions(column_names=list(types)),
        "parse_options": pa_csv.ParseOptions(newlines_in_values=True),
        "convert_options": pa_csv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # PostgreSQL's CSV: NULL is bare, '' is quoted
            true_values=["t"],
            false_values=["f"],
        ),
    }
    with _get_conn(store.config.offline_store) as conn, conn.cursor() as cur, cur.copy(query) as copy:
        rows: list[bytes] = []
        for row in copy:  # one COPY message per row, even when a value holds a newline
            rows.append(bytes(row))
            if len(rows) == CHUNK_ROWS:
                yield pa_csv.read_csv(io.BytesIO(b"".join(rows)), **options)
                rows.clear()
        if rows:
            yield pa_csv.read_csv(io.BytesIO(b"".join(rows)), **options)


def _timestamp_bytes(micros: int) -> bytes:
    """`_ts:<view>` as Feast writes it: a protobuf Timestamp."""
    seconds, rest = divmod(micros, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000).SerializeToString()


def _timestamp_nanos(stored: bytes) -> int:
    ts = Timestamp.FromString(stored)
    return ts.seconds * 1_000_000_000 + ts.nanos


# -- Redis -----------------------------------------------------------------------------------------
def _headed(head: bytes) -> Callable[[int], bytes]:
    """`head` and a bulk-string length header, for values `w` bytes long."""
    return lambda w: head + b"$%d\r\n" % w


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _redis_commands(client, payload: bytes, count: int) -> list:
    """Send already encoded commands on one connection and read their `count` replies (a pipeline
    without redis-py's per-command Python work)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([payload])
        return [conn.read_response() for _ in range(count)]
    except BaseException:
        conn.disconnect()  # replies may be left unread
        raise
    finally:
        pool.release(conn)


class _RedisWriter:
    """HSET commands of one feature view, encoded a chunk of entities at a time."""

    def __init__(self, store, view: FeatureView):
        online = store.config.online_store
        self.client = store._get_provider().online_store._get_client(online)
        self.dedup = not online.skip_dedup
        self.expire = _bulk(str(online.key_ttl_seconds).encode()) if online.key_ttl_seconds else None
        self.ts_field = _bulk(f"_ts:{view.name}".encode())
        self.features = _value_types(view)
        self.field_heads = [_bulk(_mmh3(f"{view.name}:{name}")) for name in self.features]
        self.hset_head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(self.features) + 1))
        self.key_prefix = entity_key_prefix(view.entity_columns[0].name)
        self.project = store.config.project.encode()
        self._stored_nanos: dict[bytes, int] = {}

    def newer(self, keys: Groups, micros: np.ndarray) -> np.ndarray:
        """Which rows to write: Feast's Redis store skips an entity whose stored `_ts` is as new or newer."""
        n = len(micros)
        if not self.dedup:
            return np.ones(n, dtype=bool)
        gets = wrap(keys, lambda w: b"*3\r\n$4\r\nHGET\r\n$%d\r\n" % w, b"\r\n" + self.ts_field)
        previous = _redis_commands(self.client, join_rows([gets], n), n)
        for value in set(previous) - {None} - self._stored_nanos.keys():
            self._stored_nanos[value] = _timestamp_nanos(value)
        stored = np.array([self._stored_nanos[v] if v else 0 for v in previous], dtype=np.int64)
        return (stored == 0) | (micros * 1000 > stored)

    def commands(self, chunk: pa.Table) -> tuple[bytes, int, int]:
        """(encoded commands, replies to read, entities written) for a table of `latest_rows`."""
        n = chunk.num_rows
        keys = wrap(binary_groups(chunk.column(0)), self.key_prefix, self.project)
        micros = chunk.column(1).to_numpy()
        keep = self.newer(keys, micros)
        columns = [
            wrap(keys, lambda w: self.hset_head + b"$%d\r\n" % w, b"\r\n"),
            constant_groups(micros, lambda us: self.ts_field + _bulk(_timestamp_bytes(us))),
        ]
        for head, (name, value_type) in zip(self.field_heads, self.features.items(), strict=True):
            column = value_groups(chunk.column(name), value_type)
            columns.append(wrap(column, _headed(head), b"\r\n"))
        payload = join_rows(columns, n, keep)
        written = int(keep.sum())
        if not self.expire:
            return payload, written, written
        expires = wrap(keys, lambda w: b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n" % w, b"\r\n" + self.expire)
        return payload + join_rows([expires], n, keep), 2 * written, written


def write_redis(store, view: FeatureView, chunks: Iterable[pa.Table]) -> int:
    """HSET each entity's features and `_ts:<view>` unless its stored `_ts` is as new; returns entities
    written. While Redis applies one chunk (a thread waits on the socket), the next one is encoded."""
    writer = _RedisWriter(store, view)
    written = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-redis-load") as sender:
        pending = None
        for chunk in chunks:
            payload, replies, count = writer.commands(chunk)
            if pending is not None:
                pending.result()  # raises the chunk's error, if any
            pending = sender.submit(_redis_commands, writer.client, payload, replies) if replies else None
            written += count
        if pending is not None:
            pending.result()
    return written


# -- PostgreSQL ------------------------------------------------------------------------------------
_PG_EPOCH_MICROS = 946_684_800_000_000  # COPY BINARY timestamps count from 2000-01-01
_PG_NULL = b"\xff\xff\xff\xff"


def _pg_field(width: int) -> bytes:
    return struct.pack(">i", width)


def _value_texts(column: pa.ChunkedArray, value_type: ValueType) -> Groups:
    """`value_text` as Feast's PostgreSQL store fills it (`str()` of the value; NULL where the value is
    empty), as COPY BINARY fields."""
    valid = has_value(column, value_type)
    rows = np.flatnonzero(valid)
    present = pc.filter(column, pa.array(valid))
    if value_type in (ValueType.INT64, ValueType.INT32, ValueType.STRING):
        texts = present.cast(pa.large_string())  # Arrow prints integers as str() does
    else:  # floats and bools: Python's own str()
        texts = pa.array([str(v) for v in present.to_pylist()], type=pa.large_string())
    nulls = np.flatnonzero(~valid)
    return [
        (nulls, np.full((len(nulls), len(_PG_NULL)), 0xFF, dtype=np.uint8)),
        *wrap(binary_groups(texts, rows), _pg_field),
    ]


def write_postgres(store, view: FeatureView, chunks: Iterable[pa.Table]) -> int:
    """Upsert one row per (entity, feature), as Feast's PostgreSQL store does; returns entities written.

    The upsert itself (one row per customer and feature) is what limits this path, not Python."""
    from feast.infra.online_stores.postgres_online_store.postgres import _table_id

    config = store.config
    key_prefix = entity_key_prefix(view.entity_columns[0].name)
    table = sql.Identifier(_table_id(config.project, view))
    with _get_conn(config.online_store) as conn, conn.cursor() as cur:
        # Feast binds naive UTC datetimes for event_ts: a `timestamp` column keeps that conversion.
        cur.execute(
            "create temporary table pulse_online_load (entity_key bytea, event_ts timestamp, "
            "feature_name text, value bytea, value_text text) on commit drop"
        )
        with cur.copy("copy pulse_online_load from stdin (format binary)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            written = 0
            for chunk in chunks:
                n = chunk.num_rows
                written += n
                micros = chunk.column(1).to_numpy()
                lead = [
                    wrap(
                        binary_groups(chunk.column(0)),
                        lambda w: b"\x00\x05" + _pg_field(len(key_prefix(w)) + w) + key_prefix(w),
                    ),
                    constant_groups(
                        micros, lambda us: _pg_field(8) + struct.pack(">q", us - _PG_EPOCH_MICROS)
                    ),
                ]
                for name, value_type in _value_types(view).items():
                    column = chunk.column(name)
                    feature = repeated(_pg_field(len(name.encode())) + name.encode(), n)
                    values = wrap(value_groups(column, value_type), _pg_field)
                    copy.write(join_rows([*lead, feature, values, _value_texts(column, value_type)], n))
            copy.write(b"\xff\xff")
        cur.execute(
            sql.SQL(
                "insert into {table} (entity_key, feature_name, value, value_text, vector_value, event_ts, "
                "created_ts) select entity_key, feature_name, value, value_text, null, event_ts, null "
                "from pulse_online_load order by entity_key, feature_name "
                "on conflict (entity_key, feature_name) do update set value = excluded.value, "
                "value_text = excluded.value_text, vector_value = excluded.vector_value, "
                "event_ts = excluded.event_ts, created_ts = excluded.created_ts"
            ).format(table=table)
        )
        conn.commit()
    return written


def materialize_view(store, view: FeatureView, start: datetime, end: datetime) -> int:
    """Load `view`'s newest rows in [start, end] into the online store (callers check `supports` first);
    returns the number of entities written."""
    chunks = latest_rows(store, view, start, end)
    if store.config.online_store.type == "redis":
        written = write_redis(store, view, chunks)
    else:
        written = write_postgres(store, view, chunks)
    store.registry.apply_materialization(view, store.project, start, end)
    log.info("materialised %s: %d entities written", view.name, written)
    return written
