"""Runs that cannot corrupt each other (issue 14): a build rewriting the marts and a step reading them.

The scene seen in production: three events deleted from `raw.events` (a retention job), then training and
a transform started together. The transform's first step empties the incremental models to rebuild
them; training read the emptied marts, every candidate scored AUC 0.5 and BG/NBD replaced each champion.
Here the same scene is replayed on a small demo warehouse: training must wait for the build (or fail
saying why), the champions and the scoring API must answer as before. Also: the lease the Airflow
transform DAG holds across its per-model tasks, and training's refusal of plainly broken data.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from pulse import locks, transform
from pulse.collector.process import CollectorProcess
from pulse.events.ingest import ingest_file
from pulse.events.simulator import simulate
from pulse.features.store import refresh
from pulse.modeling import train as train_module
from pulse.modeling.train import TrainingDataError, train
from pulse.pipeline import train_window
from pulse.scoring.batch import score

SIM_END = datetime(2026, 6, 1, tzinfo=UTC)
KEY = "overlap-write-key"
READ_KEY = "overlap-read-key"


def _champions(url: str) -> dict[str, tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select model_name, algorithm, run_id, n_holdout from ml.model_runs where is_champion"
        ).fetchall()
    return {name: (algorithm, run_id, n_holdout) for name, algorithm, run_id, n_holdout in rows}


def _scores(client: httpx.Client, customers: list[str]) -> dict[str, tuple[int, str | None]]:
    answers = {}
    for customer in customers:
        response = client.get(f"/v1/scores/{customer}", headers={"Authorization": f"Bearer {READ_KEY}"})
        answers[customer] = (response.status_code, response.json().get("code"))
    return answers


def _rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_a_reader_waits_for_a_build_and_a_lease_and_says_who_holds_them(settings):
    entered = threading.Event()
    release = threading.Event()

    def build() -> None:
        with locks.marts_lock("exclusive", "test build", settings):
            entered.set()
            release.wait(30)

    builder = threading.Thread(target=build)
    builder.start()
    assert entered.wait(30)
    with pytest.raises(locks.LockTimeout, match=r"training: gave up after waiting 1s .*pulse: test build"):
        with locks.marts_lock("shared", "training", settings, timeout=1):
            pass
    release.set()
    builder.join(30)
    with locks.marts_lock("shared", "training", settings, timeout=5):
        pass  # free again

    # The transform DAG's lease outlives the process that took it, until given back.
    locks.take_lease("pulse_transform/run-1", "dbt build (pulse_transform)", settings)
    with pytest.raises(locks.LockTimeout, match=r"pulse_transform/run-1 \(dbt build"):
        with locks.marts_lock("shared", "scoring", settings, timeout=1):
            pass
    with pytest.raises(locks.LockTimeout):
        with locks.marts_lock("exclusive", "dbt build", settings, timeout=1):
            pass
    assert locks.release_lease("pulse_transform/run-1", settings)
    with locks.marts_lock("shared", "scoring", settings, timeout=5):
        pass


def test_train_and_transform_started_together_after_a_deletion_change_no_champion(
    settings, tmp_path, monkeypatch
):
    url = settings.database_url
    # The purchase-propensity task only: the scene is the same for every task, and each costs minutes.
    every_task = train_module.default_tasks
    monkeypatch.setattr(train_module, "default_tasks", lambda s: every_task(s)[:1])
    sim = simulate(tmp_path / "sim", customers=300, days=45, seed=11, end=SIM_END)
    ingest_file(sim.events_path, settings)
    transform.build(settings)
    refresh(settings)
    train(settings)
    score(settings)
    before = _champions(url)
    assert before, "the demo warehouse has champions"
    with psycopg.connect(url) as conn:
        customers = [
            r[0]
            for r in conn.execute(
                "select customer_id from ml.scores where model_name = 'purchase_propensity' order by 1 limit 5"
            )
        ]

    env = {"PULSE_WRITE_KEY": KEY, "PULSE_READ_KEY": READ_KEY}
    with CollectorProcess(env, log_path=tmp_path / "collector.log") as collector:
        with httpx.Client(base_url=collector.url, timeout=30) as client:
            answers = _scores(client, customers)
            assert all(status == 200 for status, _ in answers.values()), answers

            with psycopg.connect(url, autocommit=True) as conn:  # a retention job
                conn.execute(
                    "delete from raw.events where event_id in "
                    "(select event_id from raw.events order by event_at limit 3)"
                )

            outcome: dict[str, object] = {}
            build_done = threading.Event()

            def run_transform() -> None:
                try:
                    outcome["build"] = transform.build(settings)
                except Exception as error:  # noqa: BLE001 - reported below
                    outcome["build"] = error
                finally:
                    build_done.set()

            def run_train() -> None:
                window_end = SIM_END + timedelta(days=7)
                try:
                    outcome["train"] = train_window(window_end - timedelta(days=7), window_end, settings)
                except Exception as error:  # noqa: BLE001 - reported below
                    outcome["train"] = error

            builder = threading.Thread(target=run_transform)
            trainer = threading.Thread(target=run_train)
            builder.start()
            # Start training at the worst moment: once the build has emptied the marts to rebuild them
            # (or, should a build no longer empty them, once it is under way).
            started = time.monotonic()
            while not build_done.is_set() and time.monotonic() - started < 300:
                if _rows(url, "marts.customer_features") == 0:
                    break
                time.sleep(0.02)
            trainer.start()
            builder.join(900)
            trainer.join(900)
            assert not isinstance(outcome["build"], Exception), outcome["build"]

            trained = outcome["train"]
            if isinstance(trained, Exception):  # failing is fine, if it says why
                assert isinstance(trained, (locks.LockTimeout, TrainingDataError)), repr(trained)
            after = _champions(url)
            assert {n: a for n, (a, _, _) in after.items()} == {n: a for n, (a, _, _) in before.items()}
            for name, (_, run_id, n_holdout) in after.items():
                if run_id != before[name][1]:  # retrained: on the whole rebuilt mart, not a part of it
                    assert n_holdout >= 0.9 * before[name][2], (name, n_holdout, before[name])
            time.sleep(6)  # the API re-reads champions every 5 s
            assert _scores(client, customers) == answers

    # Plainly broken data is refused and the champions stay: features all constant...
    champions = _champions(url)
    with psycopg.connect(url, autocommit=True) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = 'customer_features' and data_type in ('integer', 'bigint', 'double precision', "
                "'numeric', 'real', 'smallint')"
            )
        ]
        conn.execute(f"update marts.customer_features set {', '.join(f'{c} = 0' for c in columns)}")
    with pytest.raises(TrainingDataError, match="every feature is null or constant"):
        train(settings)
    assert _champions(url) == champions
