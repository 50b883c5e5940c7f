"""Benchmark: Feast online reads (Redis) beside raw redis-py, the scoring endpoint, and materialisation.

    .venv/bin/python bench/online/run.py [--customers 100000] [--reads 5000] [--rate 200] [--seconds 10]

Creates a scratch database on PULSE_DATABASE_URL's server (default postgresql://postgres@127.0.0.1:5432),
fills `marts.customer_features` with one snapshot of `--customers` synthetic customers (every feature of
`customer_activity`), then prints:
1. materialisation of that snapshot into PostgreSQL and into Redis (rows/s; goal >= 20,000 rows/s to Redis),
   beside Feast's own `materialize` into Redis (another Feast project) in the same run (`--no-feast-baseline`
   skips it: about a minute);
2. `get_online_features` for one customer and 30 features, p50/p99 over `--reads` reads from Redis, beside
   a raw redis-py HMGET of the same key and fields in the same run (goal: p99 <= 2x raw and <= 5 ms);
3. `GET /v1/scores/{id}` of `pulse serve` (Redis online store, a logistic-regression champion on the same
   30 features) at `--rate` requests/s open loop for `--seconds`, with the read key (goal: p99 <= 5 ms).
Everything it creates (database, Feast project keys in Redis) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 5, 1, tzinfo=UTC)
N_FEATURES = 30


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def fill_snapshot(url: str, features: dict, customers: int) -> None:
    from feast.types import Float64

    exprs, cols = [], []
    for n, (name, dtype) in enumerate(features.items()):
        cols.append(f"{name} {'double precision' if dtype == Float64 else 'bigint'}")
        expr = f"((i * {n + 7}) %% {n + 11})"
        exprs.append(f"{expr}::double precision * 1.5" if dtype == Float64 else f"{expr}::bigint")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table marts.customer_features (customer_id text not null, "
            f"event_timestamp timestamptz not null, {', '.join(cols)})"
        )
        conn.execute(
            f"insert into marts.customer_features select 'c' || lpad(i::text, 7, '0'), %s, {', '.join(exprs)} "
            "from generate_series(1, %s) as i",
            (AS_OF, customers),
        )
        conn.execute("analyze marts.customer_features")


def timed_materialise(settings, feast_native: bool = False) -> float:
    """Seconds to load the snapshot: Pulse's `materialize` (the bulk loader), or Feast's own."""
    from pulse.features.store import apply, feature_store, materialize

    apply(settings)  # not timed: registry and online tables
    start, end = AS_OF - timedelta(days=1), AS_OF + timedelta(days=1)
    started = time.perf_counter()
    if feast_native:
        feature_store(settings).materialize(start, end, feature_views=["customer_activity"])
    else:
        materialize(start, end, settings)
    return time.perf_counter() - started


def bench_reads(settings, refs: list[str], customer: str, reads: int) -> tuple[list[float], list[float]]:
    import redis
    from feast.infra.key_encoding_utils import serialize_entity_key  # noqa: F401 - used by _redis_key
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from pulse.features.store import feature_store

    store = feature_store(settings)
    rows = [{"customer_id": customer}]
    entity = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer)])
    key = _redis_key(store.project, entity, entity_key_serialization_version=3)
    fields = [_mmh3(ref) for ref in refs] + [b"_ts:customer_activity"]
    client = redis.Redis.from_url(settings.redis_url)
    values = client.hmget(key, fields)
    assert all(v is not None for v in values), "raw read found no values: wrong key layout"
    check = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    assert all(check[r.split(":")[1]][0] is not None for r in refs)
    feast_times, raw_times = [], []
    for _ in range(200):  # warm-up
        store.get_online_features(features=refs, entity_rows=rows)
        client.hmget(key, fields)
    for _ in range(reads):
        t = time.perf_counter()
        store.get_online_features(features=refs, entity_rows=rows).to_dict()
        feast_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        client.hmget(key, fields)
        raw_times.append(time.perf_counter() - t)
    return feast_times, raw_times


READ_KEY = "bench-read-key"


async def open_loop(url: str, customers: list[str], rate: int, seconds: float) -> tuple[list[float], int]:
    import httpx

    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {READ_KEY}"}  # the scoring API's read key, as clients send it
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as client:

        async def one(customer: str) -> None:
            nonlocal errors
            t = time.perf_counter()
            response = await client.get(f"/v1/scores/{customer}")
            latencies.append(time.perf_counter() - t)
            errors += response.status_code != 200

        for customer in customers[:50]:  # warm-up: model load, connections
            await one(customer)
        latencies.clear()
        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(customers[i % len(customers)])))
        await asyncio.gather(*tasks)
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--feast-baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--redis", default=os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    args = parser.parse_args()

    server = os.environ.get("PULSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"pulse_bench_online_{uuid.uuid4().hex[:8]}"
    admin = make_url(server).set(database="postgres").render_as_string(hide_password=False)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    os.environ.update(
        PULSE_DATABASE_URL=url,
        PULSE_HOME=tempfile.mkdtemp(prefix="pulse-bench-online-"),
        PULSE_FEAST_PROJECT=f"bench_{uuid.uuid4().hex[:8]}",
        DO_NOT_TRACK="1",
    )
    os.environ.pop("PULSE_REDIS_URL", None)

    from pulse import db
    from pulse.config import Settings
    from pulse.features.store import apply, feature_store, repo_objects

    pg_settings = Settings()
    redis_settings = Settings(redis_url=args.redis)
    native_settings = redis_settings.model_copy(
        update={"feast_project": f"{redis_settings.feast_project}_feast"}
    )
    db.create_schemas(pg_settings)
    (view,) = [o for o in repo_objects(pg_settings) if o.name == "customer_activity"]
    features = {f.name: f.dtype for f in view.features}
    refs = [f"customer_activity:{f}" for f in list(features)[:N_FEATURES]]
    try:
        print(f"snapshot: {args.customers:,} customers x {len(features)} features ...", flush=True)
        fill_snapshot(url, features, args.customers)
        apply(pg_settings)
        pg_seconds = timed_materialise(pg_settings)
        redis_seconds = timed_materialise(redis_settings)
        print(
            f"materialise into PostgreSQL: {args.customers / pg_seconds:,.0f} rows/s ({pg_seconds:.1f} s)\n"
            f"materialise into Redis:      {args.customers / redis_seconds:,.0f} rows/s ({redis_seconds:.1f} s)"
            "   goal >= 20,000 rows/s",
            flush=True,
        )
        if args.feast_baseline:
            native_seconds = timed_materialise(native_settings, feast_native=True)
            print(
                f"Feast's own materialize into Redis: {args.customers / native_seconds:,.0f} rows/s "
                f"({native_seconds:.1f} s); Pulse's is {native_seconds / redis_seconds:.1f}x faster",
                flush=True,
            )

        feast_times, raw_times = bench_reads(redis_settings, refs, "c0000042", args.reads)
        f50, f99, r50, r99 = (
            pct(feast_times, 50),
            pct(feast_times, 99),
            pct(raw_times, 50),
            pct(raw_times, 99),
        )
        print(
            f"get_online_features ({len(refs)} features, Redis), {args.reads:,} reads: "
            f"p50 {f50:.2f} ms, p99 {f99:.2f} ms\n"
            f"raw redis-py HMGET of the same key and fields:          p50 {r50:.2f} ms, p99 {r99:.2f} ms\n"
            f"ratio p99 feast/raw: {f99 / r99:.1f}x   goal <= 2x and <= 5 ms",
            flush=True,
        )

        # Scoring endpoint: a real champion (logistic regression on the same 30 features).
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        from pulse.collector.process import CollectorProcess
        from pulse.modeling.registry import ModelRun, save_runs

        names = [r.split(":")[1] for r in refs]
        with psycopg.connect(url) as conn:
            sample = pd.DataFrame(
                conn.execute(f"select {', '.join(names)} from marts.customer_features limit 5000").fetchall(),
                columns=names,
            )
        y = (sample[names[0]] > sample[names[0]].median()).astype(int)
        model = LogisticRegression(max_iter=300).fit(sample, y)
        run = ModelRun(
            run_id=uuid.uuid4().hex, training_id="bench", model_name="purchase_propensity",
            algorithm="logistic_regression", kind="classification", feature_service="purchase_propensity_v1",
            trained_at=datetime.now(UTC), data_end=AS_OF, holdout_at=AS_OF, horizon_days=7, n_train=5000,
            n_holdout=0, features=names, selection_metric="auc", status="champion", is_champion=True,
        )  # fmt: skip
        save_runs([(run, model, {})], pg_settings)
        customers = [f"c{i:07d}" for i in range(1, min(args.customers, 5000) + 1)]
        from pulse.scoring.api import Scorer

        scorer = Scorer(redis_settings)
        scorer.score(customers[0])
        inproc = []
        for customer in customers[:1000]:
            t = time.perf_counter()
            scorer.score(customer)
            inproc.append(time.perf_counter() - t)
        print(
            f"Scorer.score in process (no HTTP), 1,000 calls: p50 {pct(inproc, 50):.2f} ms, "
            f"p99 {pct(inproc, 99):.2f} ms",
            flush=True,
        )
        env = {"PULSE_REDIS_URL": args.redis, "PULSE_WRITE_KEY": "bench", "PULSE_READ_KEY": READ_KEY}
        with CollectorProcess(env) as collector:
            latencies, errors = asyncio.run(open_loop(collector.url, customers, args.rate, args.seconds))
        print(
            f"GET /v1/scores at {args.rate} req/s for {args.seconds:g} s ({len(latencies):,} requests, "
            f"{errors} non-200): p50 {pct(latencies, 50):.2f} ms, p99 {pct(latencies, 99):.2f} ms, "
            f"max {max(latencies) * 1000:.1f} ms   goal p99 <= 5 ms",
            flush=True,
        )
    finally:
        try:
            # Feast's teardown also drops the (shared) SQL registry: remove the baseline's keys first.
            native = feature_store(native_settings)
            native._get_provider().teardown_infra(
                native.project, native.list_feature_views(), native.list_entities()
            )
            feature_store(redis_settings).teardown()
        except Exception as error:  # noqa: BLE001
            print(f"teardown: {error}")
        db._engine_for(url).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
