"""
### pulse_transform

Runs the dbt project (`dbt_project/`) through astronomer-cosmos when new events land, as a production
build (the same selection as `pulse build`: no audience models, no dbt unit tests), with a task per
model in dependency order, so the graph shows each model and a failing test stops only what depends on
it. How dbt runs is `PULSE_DBT_EXECUTION_MODE`:

- `local`: each model's task runs `dbt build` of that model and its data tests; a test over two models
  (e.g. `relationships`) runs in its own task once both are built.
- `watcher`: one task (`dbt_producer_watcher`) runs one `dbt build` of the whole selection with dbt's
  threads; each model's `run` and `test` tasks watch it and finish when dbt reports that node (a retry
  of a failed model's task re-runs just that model).

dbt starts inside the task's process (`PULSE_DBT_INVOCATION_MODE=dbt_runner`) or as a `dbt` command
(`subprocess`). The graph is rendered from the manifest `dbt parse` writes (`LoadMode.DBT_MANIFEST`;
re-made automatically when a model changes), not by running dbt at every parse. The marts are tables
rebuilt from `raw.events`, so a re-run gives identical tables.

`profiles.yml` reads `PULSE_PG_*`, which each task derives from the warehouse connection just before
dbt starts. Ends by checking the marts the next steps read, then emits `pulse_marts`
(which triggers `pulse_features`). From the first model to the last it holds a lease on the marts
(`audit.build_leases`, `pulse.locks`): the DAGs that read them wait, so none sees a half-built mart.

Calls: cosmos (dbt), `pulse.pipeline.check_marts` (the CLI equivalent is `pulse build`).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from pulse.config import get_settings
from pulse.dag_support import DEFAULT_ARGS, MARTS, RAW_EVENTS, START_DATE, TAGS, data_window, publish
from pulse.transform import PRODUCTION_EXCLUDE_SELECTORS, PRODUCTION_EXCLUDES_ENV, dbt_manifest

_settings = get_settings()
DBT_DIR = _settings.project_dir / "dbt_project"
WATCHER = _settings.dbt_execution_mode == "watcher"
WATCHER_ARGS = {
    "poke_interval": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": False,
}


@dag(
    dag_id="pulse_transform",
    schedule=[RAW_EVENTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=[*TAGS, "dbt"],
)
def pulse_transform():
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_DIR, manifest_path=dbt_manifest(_settings), project_name="pulse"
        ),
        profile_config=ProfileConfig(
            profile_name="pulse", target_name="default", profiles_yml_filepath=DBT_DIR / "profiles.yml"
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # The watcher's one `dbt build` runs the tests; a task per model watches its tests
            # (cosmos has no per-model build task in that mode).
            test_behavior=TestBehavior.AFTER_EACH if WATCHER else TestBehavior.BUILD,
            # A test over two models (e.g. `relationships`) runs in its own task once both are built.
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,  # Pulse emits its own Assets, with the data window
            exclude=PRODUCTION_EXCLUDE_SELECTORS,  # as `pulse build`: the audience models come after scoring
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER if WATCHER else ExecutionMode.LOCAL,
            invocation_mode=InvocationMode(_settings.dbt_invocation_mode),
            dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
        ),
        operator_args={
            "install_deps": False,  # dbt deps needs the dbt hub; Pulse has no packages
            "append_env": True,  # dbt sees the PULSE_PG_* the pre_execute hook exported
            # A production build: no dbt unit tests (they run in CI; see pulse.transform).
            "env": PRODUCTION_EXCLUDES_ENV,
            # Watchers: look at the build's progress every 2 s (cosmos: 10 s) while deferred, and retry
            # after 5 s, not Pulse's usual minute: Airflow 3.3.2 fails a watcher whose trigger fires
            # before the scheduler has seen it defer (apache/airflow#67287; the fix, #68741, is not in
            # 3.3.2), and the retry, which reads the build's outcome or re-runs the node, is cheap.
            **(WATCHER_ARGS if WATCHER else {}),
        },
    )

    # The models are built by one task each, in several processes: the lease keeps every reader of the
    # marts (features, training, scoring, audiences, forget) waiting from the first model to the last,
    # as `pulse build`'s lock does (pulse.locks). The teardown gives it back even when a model fails.
    @task
    def take_build_lease(**context) -> str:
        from pulse.locks import take_lease

        holder = f"pulse_transform/{context['run_id']}"
        take_lease(holder, "dbt build (pulse_transform)")
        return holder

    @task
    def release_build_lease(holder: str) -> bool:
        from pulse.locks import release_lease

        return release_lease(holder)

    # Inlets: the triggers whose late events widen the window (see data_window).
    @task(inlets=[RAW_EVENTS], outlets=[MARTS])
    def check_marts(**context) -> dict:
        from pulse.pipeline import check_marts as check

        start, end = data_window(context)
        counts = check()
        publish(context, MARTS, start, end, **counts)
        return counts

    lease = take_build_lease()
    lease >> dbt >> check_marts() >> release_build_lease(lease).as_teardown(setups=lease)


dag_object = pulse_transform()

if __name__ == "__main__":
    if WATCHER:  # a watcher may start before the producer under dag.test() and wait for it forever
        sys.exit("dag.test() needs PULSE_DBT_EXECUTION_MODE=local (the watcher mode needs a scheduler)")
    dag_object.test()
