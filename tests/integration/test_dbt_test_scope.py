"""The data tests of the incremental models check the rows the *current* run wrote.

Their `where: __written_by_this_run__` becomes `_updated_at >= <this run's start>` when the test runs
(macros/get_where_subquery.sql). Written as `{{ run_started_at }}` in the YAML, dbt would render it when
it parses and partial parsing would keep it: an incremental build after a full one would then test
against the full build's start (every row), and a later one could miss rows. Real PostgreSQL, real dbt:
two builds in a row, and the second one's compiled tests must name a time after the first one ended.
"""

import json
import re
from datetime import datetime

import pytest

from tests.integration.dbt_support import dbt_build, load_simulation

pytestmark = pytest.mark.e2e

WRITTEN_SINCE = re.compile(r"_updated_at >= '([^']+)'::timestamptz")


def run_results(settings) -> dict:
    return json.loads((settings.home_dir / "dbt" / "target" / "run_results.json").read_text())


def test_incremental_data_tests_use_this_runs_start(settings, tmp_path):
    load_simulation(settings, tmp_path, customers=20, days=4, seed=3)
    dbt_build(settings, full_refresh=True)
    first_ended = datetime.fromisoformat(run_results(settings)["metadata"]["generated_at"])

    dbt_build(settings)  # partial parsing: nothing changed since the first build's parse
    scoped = {}
    for result in run_results(settings)["results"]:
        found = WRITTEN_SINCE.search(result.get("compiled_code") or "")
        if result["unique_id"].startswith("test.") and found:
            scoped[result["unique_id"]] = datetime.fromisoformat(found.group(1))
    assert len(scoped) >= 10, scoped  # the keys of sessions, features, daily and stitched at least
    stale = {test: since for test, since in scoped.items() if since <= first_ended}
    assert stale == {}
