"""`pulse import-campaign` + `pulse train-uplift` on a real warehouse: a campaign file with a planted
effect, some empty outcomes (scored, not trained on), rows of another group (ignored, counted)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from pulse.db import engine

PULSE = str(Path(sys.executable).parent / "pulse")
pytestmark = pytest.mark.e2e


def pulse(*args: str, ok: bool = True) -> str:
    result = subprocess.run(
        [PULSE, *args], env=os.environ.copy(), capture_output=True, text=True, timeout=600
    )
    assert (result.returncode == 0) == ok, f"pulse {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def write_campaign(path: Path, n: int = 3000, seed: int = 0) -> dict[str, float]:
    """Customers with `visits` and a `tier`; the campaign works only on tier gold with many visits."""
    rng = np.random.default_rng(seed)
    effects = {}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cust", "arm", "bought", "visits", "tier"])
        for i in range(n):
            visits = int(rng.poisson(5))
            tier = rng.choice(["gold", "silver", "bronze"])
            effect = 0.3 if (tier == "gold" and visits >= 5) else 0.0
            arm = "mail" if rng.random() < 0.6 else "holdout"
            bought = int(rng.random() < 0.1 + (effect if arm == "mail" else 0))
            outcome = "" if i % 25 == 0 else str(bought)  # 4% of outcomes unknown
            writer.writerow([f"k{i:05d}", arm, outcome, visits, tier])
            effects[f"k{i:05d}"] = effect
        writer.writerow(["x1", "pilot", "1", 3, "gold"])  # another group: ignored
        writer.writerow(["x2", "pilot", "0", 3, "gold"])
    return effects


def test_import_and_train_uplift_scores_everyone(settings, tmp_path):
    path = tmp_path / "spring.csv"
    effects = write_campaign(path)
    flags = ["--customer-column", "cust", "--group-column", "arm", "--treatment-value", "mail"]
    flags += ["--control-value", "holdout", "--outcome-column", "bought"]
    said = pulse("import-campaign", str(path), "--name", "spring", *flags)
    assert "120 without an outcome" in said and "2 rows of other groups ignored" in said

    assert "(champion)" in pulse("train-uplift", "spring")
    with engine(settings).connect() as conn:
        scores = dict(
            conn.execute(
                sa.text("select customer_id, uplift from ml.uplift_scores where campaign = 'spring'")
            )
            .tuples()
            .all()
        )
        unknown = (
            conn.execute(
                sa.text(
                    "select customer_id from ml.campaign_outcomes where campaign = 'spring' and outcome is null"
                )
            )
            .scalars()
            .all()
        )
        metrics = conn.execute(
            sa.text(
                "select algorithm, bool_or(is_champion), count(*) filter (where metric = 'qini_y') "
                "from ml.uplift_metrics where campaign = 'spring' group by 1"
            )
        ).all()
    assert len(scores) == 3000 and "x1" not in scores
    assert len(unknown) == 120 and all(c in scores for c in unknown)
    assert {a for a, _, _ in metrics} == {"t_learner", "class_transformation", "x_learner"}
    assert sum(champion for _, champion, _ in metrics) == 1
    assert all(points == 50 for _, _, points in metrics)
    # The model found the persuadable customers: their mean predicted uplift is far above the others'.
    persuadable = np.mean([u for c, u in scores.items() if effects[c] > 0])
    others = np.mean([u for c, u in scores.items() if effects[c] == 0])
    assert persuadable > others + 0.15


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["a", "treatment", "yes"]], "is not 0/1 or a number"),
        ([["a", "treatment", "1"], ["a", "control", "0"]], "appears twice"),
        ([["a", "treatment", "1"], ["b", "treatment", "0"]], "both the treatment and the control"),
    ],
)
def test_import_refuses_bad_files_and_keeps_the_old_campaign(settings, tmp_path, rows, message):
    good = tmp_path / "good.csv"
    good.write_text("customer_id,group,converted\nz1,treatment,1\nz2,control,0\n")
    pulse("import-campaign", str(good), "--name", "c")
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as handle:
        csv.writer(handle).writerows([["customer_id", "group", "converted"], *rows])
    assert message in pulse("import-campaign", str(bad), "--name", "c", ok=False)
    with engine(settings).connect() as conn:
        kept = conn.execute(
            sa.text("select count(*) from ml.campaign_outcomes where campaign = 'c'")
        ).scalar()
    assert kept == 2


def test_missing_column_and_too_few_outcomes_are_named(settings, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,group,converted\nz1,treatment,1\nz2,control,0\n")
    assert "no column bought" in pulse(
        "import-campaign", str(path), "--name", "c", "--outcome-column", "bought", ok=False
    )
    pulse("import-campaign", str(path), "--name", "c")
    assert "need at least 20 in each group" in pulse("train-uplift", "c", ok=False)
