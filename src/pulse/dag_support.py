"""What Pulse's DAG files share: the Assets that chain them, default task arguments, the failure
callback, the data window a run works on, and the environment hook tasks start with.

The one module of `pulse` that imports Airflow: the step functions it adapts (`pulse.pipeline`) stay
importable without it. Every DAG file imports it at parse time, so it imports nothing heavy at top level.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset

log = logging.getLogger("pulse.airflow")

# The warehouse as an Airflow connection. Pulse sets AIRFLOW_CONN_PULSE_WAREHOUSE from
# PULSE_DATABASE_URL (`pulse airflow`, docker-compose.yml); a deployment may instead define the
# connection in a secrets backend and leave PULSE_DATABASE_URL unset.
WAREHOUSE_CONN_ID = "pulse_warehouse"

# What each DAG produces; a downstream DAG is scheduled on its inputs' Assets. The `x-pulse` scheme
# names tables in "the" warehouse, whichever server PULSE_DATABASE_URL points at.
RAW_EVENTS = Asset(name="pulse_raw_events", uri="x-pulse://warehouse/raw/events", group="pulse")
MARTS = Asset(name="pulse_marts", uri="x-pulse://warehouse/marts/customer_features", group="pulse")
ONLINE_FEATURES = Asset(name="pulse_online_features", uri="x-pulse://feast/online/customer", group="pulse")
MODEL = Asset(name="pulse_model", uri="x-pulse://warehouse/ml/model_runs", group="pulse")
AUDIENCES = Asset(name="pulse_audiences", uri="x-pulse://warehouse/audiences/audience_members", group="pulse")

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["pulse"]


def prepare_task_env(context: Any) -> None:
    """Before every task: point Pulse (and dbt's profiles.yml) at the warehouse.

    PULSE_DATABASE_URL wins when set; otherwise the `pulse_warehouse` Airflow connection supplies it.
    The PULSE_PG_* variables dbt's profiles.yml reads are derived from it, in the task's own process,
    so no credential is rendered into the DAG or shown in the UI.
    """
    if not os.environ.get("PULSE_DATABASE_URL"):
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(WAREHOUSE_CONN_ID)
        except Exception:  # noqa: BLE001 - no connection: Pulse falls back to its embedded PostgreSQL
            conn = None
        if conn is not None:
            os.environ["PULSE_DATABASE_URL"] = conn.get_uri()
    from pulse.transform import dbt_connection_env

    os.environ.update(dbt_connection_env())


def on_failure(context: Any) -> None:
    """One clear line in the task log: which step failed, for which window, why, and what to do."""
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    try:
        start, end = data_window(context)
        window = f"[{start.isoformat()}, {end.isoformat()})"
    except Exception:  # noqa: BLE001 - the message must not fail
        window = "(unknown window)"
    log.error(
        "Pulse step %s.%s failed for data window %s: %s: %s. Fix the cause, then clear the task: "
        "every Pulse task is idempotent over its window, so re-running it is safe.",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        window,
        type(error).__name__ if error else "error",
        error,
    )


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "pulse",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "pre_execute": prepare_task_env,
    "on_failure_callback": on_failure,
}


def _as_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def data_window(context: Any) -> tuple[datetime, datetime]:
    """The [start, end) window this run works on.

    A run triggered by Assets covers the windows of the upstream runs that triggered it (carried in the
    asset events' `extra`), widened by those of the task's inlets' events that came after the newest
    triggering event but before the run began (`_late_windows`). Otherwise it is the run's own data
    interval (a manual or asset-less run of an asset-scheduled DAG has a zero-length interval at its
    logical date).
    """
    triggering = [e for events in (context.get("triggering_asset_events") or {}).values() for e in events]
    windows = [w for w in map(_window_of, triggering) if w]
    if windows:
        windows += _late_windows(context, newest=max(e.timestamp for e in triggering))
        return min(w[0] for w in windows), max(w[1] for w in windows)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        run_after = _as_datetime(context["dag_run"].run_after)
        return run_after, run_after
    return _as_datetime(start), _as_datetime(end)


def _window_of(event: Any) -> tuple[datetime, datetime] | None:
    extra = event.extra or {}
    if "window_start" in extra and "window_end" in extra:
        return _as_datetime(extra["window_start"]), _as_datetime(extra["window_end"])
    return None


def _late_windows(context: Any, newest: datetime) -> list[tuple[datetime, datetime]]:
    """The windows of the task's inlets' events between the run's newest triggering event and its start.

    Airflow 3 leaves those out of every run's triggering events when they arrive while the DAG is at
    `max_active_runs` (apache/airflow#56050: the events after the queued run's cutoff are dropped with its
    queue row). Their data was written before this run began, so the run reads it; without them a run
    would publish (or, for features, materialise) an older window and the later days would be missed
    downstream. So every asset-triggered task that uses its window declares its triggers as inlets.
    """
    began = context["dag_run"].start_date
    inlet_events = context.get("inlet_events")
    if began is None or not inlet_events:
        return []
    late = [
        _window_of(event)
        for asset in inlet_events
        for event in inlet_events[asset].after(newest.isoformat()).before(began.isoformat())
    ]
    return [w for w in late if w]


def publish(context: Any, asset: Asset, start: datetime, end: datetime, **info: Any) -> None:
    """Attach the window (and a summary) to the asset event this task emits on success."""
    context["outlet_events"][asset].extra = {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        **{k: v for k, v in info.items() if isinstance(v, str | int | float | bool)},
    }
