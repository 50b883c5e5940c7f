"""Build Pulse's Feast `FeatureStore` from settings, apply the feature repo, materialise, retrieve.

`feature_repo/feature_store.yaml` holds `${...}` placeholders. Pulse fills them from a mapping it derives
from the warehouse and Redis URLs instead of mutating `os.environ`, so one process can talk to several
warehouses (tests do) and users can still run the `feast` CLI with the same variables exported.
"""

from __future__ import annotations

import importlib
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import yaml

from pulse.config import Settings, get_settings
from pulse.db import ConnParts, sqlalchemy_url, warehouse_url
from pulse.ddl import ensure_tables
from pulse.features.snapshots import snapshot_bounds
from pulse.locks import marts_lock

REPO_MODULES = ("entities", "data_sources", "feature_views", "feature_services")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def repo_dir(settings: Settings) -> Path:
    return settings.project_dir / "feature_repo"


def redis_connection_string(url: str) -> str:
    """`redis://[:password@]host:port/db` to Feast's `host:port,db=N[,password=...]`."""
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/")
    if db:
        parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def feast_env(settings: Settings) -> dict[str, str]:
    """Every variable `feature_store*.yaml` reads."""
    url = warehouse_url(settings)
    env = ConnParts.from_url(url).env()
    env["PULSE_FEAST_PROJECT"] = settings.feast_project
    env["PULSE_FEAST_REGISTRY_URL"] = sqlalchemy_url(url, driver="psycopg")
    if settings.redis_url:
        env["PULSE_FEAST_REDIS"] = redis_connection_string(settings.redis_url)
    return env


def config_file(settings: Settings) -> Path:
    name = "feature_store_redis.yaml" if settings.redis_url else "feature_store.yaml"
    return repo_dir(settings) / name


def repo_config(settings: Settings):
    from feast.repo_config import RepoConfig

    env = feast_env(settings)
    text = config_file(settings).read_text()
    expanded = _PLACEHOLDER.sub(lambda m: env[m.group(1)], text)
    config = RepoConfig(**yaml.safe_load(expanded))
    config.repo_path = repo_dir(settings)
    return config


def feature_store(settings: Settings | None = None):
    from feast import FeatureStore

    return FeatureStore(config=repo_config(settings or get_settings()))


@contextmanager
def _importable(path: Path):
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))


def repo_objects(settings: Settings) -> list:
    """The Feast objects defined in `feature_repo/` (what `feast apply` would register)."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, StreamFeatureView
    from feast.data_source import DataSource

    kinds = (Entity, DataSource, FeatureView, StreamFeatureView, OnDemandFeatureView, FeatureService)
    objects: list = []
    with _importable(repo_dir(settings)):
        for name in REPO_MODULES:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if isinstance(value, kinds) and not any(value is seen for seen in objects):
                    objects.append(value)
    return objects


def apply(settings: Settings | None = None) -> list[str]:
    """Register the repo's entities, sources, views and services; create online tables. Idempotent."""

    settings = settings or get_settings()
    objects = repo_objects(settings)
    ensure_tables(
        warehouse_url(settings), "features.sql", ("features.customer_realtime_log",)
    )  # the (empty) batch table behind the push source
    feature_store(settings).apply(objects)
    return sorted(f"{type(o).__name__}:{o.name}" for o in objects)


def batch_views(store) -> list:
    """Feature views loaded by materialisation: every online view except those fed by pushes (the
    collector keeps those fresh; materialising their empty batch table would add nothing)."""
    from feast.data_source import PushSource

    return [
        fv for fv in store.list_feature_views() if fv.online and not isinstance(fv.stream_source, PushSource)
    ]


def materialize(start: datetime, end: datetime, settings: Settings | None = None) -> None:
    """Load the latest feature values with timestamps in [start, end] into the online store.

    The online store ends up as Feast's `materialize` would leave it; views the bulk loader handles
    (`pulse.features.bulk_load`, 20-50x faster) skip Feast's per-value Python conversion."""
    from feast.utils import make_tzaware

    from pulse.features import bulk_load

    store = feature_store(settings)
    start, end = make_tzaware(start), make_tzaware(end)
    if start > end:
        raise ValueError(f"materialisation window starts after it ends: {start} > {end}")
    by_feast = []
    for view in batch_views(store):
        if bulk_load.supports(store, view):
            bulk_load.materialize_view(store, view, start, end)
        else:
            by_feast.append(view.name)
    if by_feast:
        store.materialize(start_date=start, end_date=end, feature_views=by_feast)


@dataclass
class RefreshResult:
    objects: list[str]
    start: datetime
    end: datetime


def refresh(settings: Settings | None = None) -> RefreshResult:
    """`pulse features`: apply the repo, then materialise every snapshot in the mart to the online store."""
    settings = settings or get_settings()
    with marts_lock("shared", "feature materialisation", settings):
        objects = apply(settings)
        first, last = snapshot_bounds(settings)
        end = last + timedelta(seconds=1)  # include the newest snapshot
        materialize(first, end, settings)
    return RefreshResult(objects, first, end)


def online_lookback(settings: Settings) -> timedelta:
    """The longest TTL of the repo's online feature views: how far back a window's materialisation reads."""
    from feast import FeatureView

    ttls = [
        o.ttl for o in repo_objects(settings) if isinstance(o, FeatureView) and o.online and o.ttl is not None
    ]
    return max(ttls, default=timedelta(days=1))


def materialize_window(start: datetime, end: datetime, settings: Settings | None = None) -> RefreshResult:
    """Apply the repo and make the online store hold each customer's latest snapshot before `end`.

    For an Airflow data interval [start, end): Feast loads the newest row per customer with a timestamp
    in [min(start, end - ttl), end) (its end bound is inclusive, so it is moved 1 microsecond back). The
    same window always writes the same values, so a re-run changes nothing.
    """
    settings = settings or get_settings()
    with marts_lock("shared", "feature materialisation", settings):
        objects = apply(settings)
        snapshot_bounds(settings)  # a clear error if the snapshot mart is empty
        end_inclusive = end - timedelta(microseconds=1)
        first = min(start, end - online_lookback(settings))
        materialize(first, end_inclusive, settings)
    return RefreshResult(objects, first, end_inclusive)


def training_frame(
    entity_df: pd.DataFrame, feature_service: str, settings: Settings | None = None
) -> pd.DataFrame:
    """Point-in-time join of `entity_df` (customer_id, event_timestamp, ...) with a feature service."""
    store = feature_store(settings)
    service = store.get_feature_service(feature_service)
    return store.get_historical_features(entity_df=entity_df, features=service).to_df()


def online_frame(
    customer_ids: list[str], feature_service: str, settings: Settings | None = None
) -> pd.DataFrame:
    """Current feature values from the online store, one row per customer id."""
    store = feature_store(settings)
    service = store.get_feature_service(feature_service)
    response = store.get_online_features(
        features=service, entity_rows=[{"customer_id": c} for c in customer_ids]
    )
    return response.to_df()
