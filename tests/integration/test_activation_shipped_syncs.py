"""The shipped file-drop syncs (campaigns/syncs/*_file.yml), as `pulse demo` runs them: one per shipped
audience, each run a CSV of the treatment group's changes under PULSE_HOME/exports/syncs/, logged in
activation.sync_runs; syncs to other destinations are not run by the demo."""

from __future__ import annotations

import csv

import sqlalchemy as sa

from pulse.activation.engine import run_syncs
from pulse.activation.syncs import load_syncs, syncs_dir
from pulse.audiences import definitions_dir, load_definitions
from pulse.db import engine
from tests.activation_fakes import set_audience


def test_one_shipped_file_drop_sync_per_shipped_audience(settings):
    syncs = load_syncs(syncs_dir(settings))
    audiences = {d.name for d in load_definitions(definitions_dir(settings))}
    file_syncs = [s for s in syncs if s.kind == "file_drop"]
    assert sorted(s.audience for s in file_syncs) == sorted(audiences)
    assert all(s.enabled and s.mode == "mirror" and "email_sha256" in s.fields for s in file_syncs)


def test_demo_runs_the_file_drop_syncs_from_scratch(settings):
    shipped = [s for s in load_syncs(syncs_dir(settings)) if s.kind == "file_drop"]
    for n, sync in enumerate(shipped):
        set_audience(settings, sync.audience, [f"{sync.audience}_{i}" for i in range(5 + n)], ["held"])

    first = run_syncs(settings=settings, kinds=frozenset({"file_drop"}), fresh=True)
    assert [r.sync for r in first] == [s.name for s in shipped]
    assert all(r.status == "success" for r in first)
    assert [r.counts.accepted for r in first] == [5 + n for n in range(len(shipped))]
    for sync in shipped:
        (written,) = (settings.home_dir / "exports" / "syncs" / sync.audience).glob("*.csv")
        rows = list(csv.DictReader(written.open()))
        assert {r["operation"] for r in rows} == {"add"} and len(rows) >= 5
        assert "held" not in {r["customer_id"] for r in rows}  # the holdout never leaves Pulse

    assert all(r.counts.planned == 0 for r in run_syncs(settings=settings, kinds=frozenset({"file_drop"})))
    again = run_syncs(settings=settings, kinds=frozenset({"file_drop"}), fresh=True)
    assert [r.counts.accepted for r in again] == [r.counts.accepted for r in first]
    with engine(settings).connect() as conn:
        runs = conn.execute(
            sa.text("select count(*) from activation.sync_runs where destination = 'file_drop'")
        ).scalar()
    assert runs == 3 * len(shipped)
