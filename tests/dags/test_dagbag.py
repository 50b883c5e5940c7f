"""DAG integrity: every DAG imports, and has tags, retries and docs."""

import pytest

pytestmark = pytest.mark.xdist_group("airflow")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "pulse_pipeline" in dagbag.dags


def test_every_dag_has_tags_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_pipeline_runs_every_step_in_order(dagbag):
    dag = dagbag.dags["pulse_pipeline"]
    order = ["ingest", "build", "features", "train", "score", "audiences"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
