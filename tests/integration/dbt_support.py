"""Helpers the dbt integration tests share: load a small simulation, add events, build the warehouse."""

import json
from datetime import date
from pathlib import Path

from pulse.config import Settings
from pulse.events.ingest import ingest_path
from pulse.events.simulator import simulate
from pulse.transform import run_dbt

END = date(2026, 5, 1)

# The warehouse models (issue 4); the audience models built on top of them have their own tests.
WAREHOUSE_ONLY = ["--exclude", "path:models/audiences", "path:models/staging/ml"]


def load_simulation(settings: Settings, tmp_path: Path, customers: int = 120, days: int = 30, seed: int = 21):
    sim = simulate(tmp_path / "sim", customers=customers, days=days, seed=seed, end=END)
    ingest_path(sim.events_path, settings)
    return sim


def ingest_events(settings: Settings, tmp_path: Path, name: str, events: list[dict]) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = ingest_path(path, settings)
    assert result.rejected == 0, result


def dbt_build(settings: Settings, full_refresh: bool = False, command: str = "build") -> None:
    run_dbt([command, *WAREHOUSE_ONLY, *(["--full-refresh"] if full_refresh else [])], settings)
