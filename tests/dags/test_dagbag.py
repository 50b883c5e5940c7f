"""DAG integrity: every DAG imports, has tags, retries and docs, and the DAGs chain through Assets."""

import json
from datetime import timedelta

import pytest

from pulse.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.xdist_group("airflow")

PULSE_DAGS = {"pulse_ingest", "pulse_transform", "pulse_features", "pulse_train", "pulse_score_audiences"}
MANUAL_DAGS = {"pulse_forget_customer"}


def test_no_import_errors_and_every_pulse_dag_is_there(dagbag):
    assert dagbag.import_errors == {}
    assert PULSE_DAGS | MANUAL_DAGS <= set(dagbag.dags)


def test_the_forget_dag_is_manual_and_asks_for_its_subject(dagbag):
    dag = dagbag.dags["pulse_forget_customer"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # only ever triggered by hand
    assert {"customer_id", "email"} <= set(dag.params.keys())
    assert [t.task_id for t in dag.leaves] == ["verify"]  # the run ends by checking nothing is left


def test_every_dag_has_tags_retries_docs_and_a_failure_callback(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} has no real doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure callback"


def _asset_names(condition) -> set[str]:
    """The names of the Assets in a schedule condition (AssetAll / AssetAny nest Assets)."""
    if hasattr(condition, "objects"):
        return set().union(*(_asset_names(o) for o in condition.objects))
    return {condition.name}


def test_dags_are_chained_by_assets(dagbag):
    produced = {
        dag_id: {o.name for t in dagbag.dags[dag_id].tasks for o in t.outlets} for dag_id in PULSE_DAGS
    }
    assert produced["pulse_ingest"] == {"pulse_raw_events"}
    consumers = {
        "pulse_transform": {"pulse_raw_events"},
        "pulse_features": {"pulse_marts"},
        "pulse_score_audiences": {"pulse_online_features", "pulse_model"},
    }
    for dag_id, inputs in consumers.items():
        assert _asset_names(dagbag.dags[dag_id].timetable.asset_condition) == inputs, dag_id
        for name in inputs:  # every input is some Pulse DAG's output
            assert any(name in outs for outs in produced.values()), name
    assert dagbag.dags["pulse_ingest"].timetable.expression == "*/5 * * * *"
    assert dagbag.dags["pulse_train"].timetable.expression == "0 4 * * 1"


@pytest.fixture(scope="module")
def manifest_nodes(tmp_path_factory) -> dict[str, dict]:
    """dbt's manifest nodes by unique id (`dbt parse` once for this module, when stale)."""
    from pulse.transform import dbt_manifest

    home = tmp_path_factory.mktemp("home")
    return json.loads(dbt_manifest(Settings(home=home)).read_text())["nodes"]


def _transform_nodes(manifest_nodes: dict[str, dict]) -> tuple[set[str], set[str]]:
    """The models the transform DAG builds, and the tests over two of them (from dbt's manifest)."""
    nodes = manifest_nodes.values()
    # The audience models read the scores: the audiences step builds them after scoring, not this DAG.
    models = {n["name"] for n in nodes if n["resource_type"] == "model" and "audiences" not in n["tags"]}
    built = {n["unique_id"] for n in nodes if n["resource_type"] == "model" and n["name"] in models}
    multi_parent_tests = {
        n["name"]
        for n in nodes
        if n["resource_type"] == "test"
        and len(parents := {d for d in n["depends_on"]["nodes"] if d.startswith("model.")}) > 1
        and parents <= built
    }
    return models, multi_parent_tests


def _transform_dag(mode: str, monkeypatch):
    """The transform DAG file alone, parsed with PULSE_DBT_EXECUTION_MODE=mode."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("PULSE_DBT_EXECUTION_MODE", mode)
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "pulse_transform.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["pulse_transform"]


def test_the_default_mode_is_the_watcher():
    """The faster of the two through a scheduler (docs/benchmarks.md, Transform DAG); dag.test() runs pin
    `local` (tests/dags/conftest.py)."""
    assert Settings.model_fields["dbt_execution_mode"].default == "watcher"


def _ephemeral_models(manifest_nodes: dict[str, dict]) -> set[str]:
    return {n["name"] for n in manifest_nodes.values() if n["config"].get("materialized") == "ephemeral"}


@pytest.mark.parametrize("mode", ["watcher", "local"])
def test_transform_has_one_dbt_task_per_model_with_its_tests(mode, dagbag, manifest_nodes, monkeypatch):
    models, multi_parent_tests = _transform_nodes(manifest_nodes)
    dag = _transform_dag(mode, monkeypatch)
    dbt_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("dbt.")}
    if mode == "watcher":
        # One producer runs `dbt build` of the selection; a run and a test task per model watch it.
        producer = dag.get_task("dbt.dbt_producer_watcher")
        assert producer.exclude == "tag:audiences" and producer.env == {
            "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test"
        }
        model_tasks = {t for t in dbt_tasks if t.endswith(".run")}
        # Watchers retry within seconds (Airflow can fail one whose trigger fires at once: see the DAG).
        watchers = [dag.get_task(t) for t in dbt_tasks if t.endswith((".run", ".test"))]
        assert {(w.retry_delay, w.retry_exponential_backoff) for w in watchers} == {(timedelta(seconds=5), False)}
        # An ephemeral model (a mart's "this run" scratch) is built inside its readers: cosmos shows it
        # as an empty task, for the graph.
        ephemeral = _ephemeral_models(manifest_nodes)
        assert model_tasks == {f"dbt.{m}.run" for m in models - ephemeral}
        placeholders = {f"dbt.{m}_run" for m in ephemeral}
        assert {type(dag.get_task(t)).__name__ for t in placeholders} == {"EmptyOperator"}
        assert {t for t in dbt_tasks if t.endswith(".test")} <= {f"dbt.{m}.test" for m in models}
        test_tasks = dbt_tasks - model_tasks - {t for t in dbt_tasks if t.endswith(".test")}
        test_tasks -= {"dbt.dbt_producer_watcher", "dbt.dbt_producer_watcher_done", *placeholders}
    else:
        model_tasks = {t for t in dbt_tasks if t.endswith("_model_build")}
        assert model_tasks == {f"dbt.{m}_model_build" for m in models}
        # Materialised models run `dbt build` (model + its own tests); ephemeral ones have nothing to run.
        builds = {t.task_id for t in dag.tasks if type(t).__name__ == "DbtBuildLocalOperator"}
        assert {"dbt.stg_pulse__events_model_build", "dbt.customer_features_model_build"} <= builds
        test_tasks = dbt_tasks - model_tasks
    # A test over two models runs in its own task, after both models are built.
    assert test_tasks == {f"dbt.{t}_test" for t in multi_parent_tests}
    for task_id in test_tasks:
        assert len(dag.get_task(task_id).upstream_task_ids) >= 2, task_id
    # The marts check waits for every dbt task (through the leaves of the dbt graph).
    leaves = {t for t in dbt_tasks if not dag.get_task(t).downstream_task_ids & dbt_tasks}
    assert leaves
    assert dag.get_task("check_marts").upstream_task_ids == leaves
    assert dagbag.dags["pulse_score_audiences"].get_task("audiences").upstream_task_ids == {"score"}


def test_every_dbt_node_id_fits_an_xcom_key(manifest_nodes):
    """Cosmos' watcher mode pushes each node's status under an XCom key made from its unique id ('.' as
    '__', plus a suffix); Airflow's key column holds 512 characters, and a longer key fails the build."""
    too_long = [uid for uid in manifest_nodes if len(uid.replace(".", "__")) + len("_tests_status") > 512]
    assert not too_long, too_long
