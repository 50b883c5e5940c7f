"""Fitted models are signed when stored and verified before they are unpickled: whoever can write
ml.model_runs cannot make the collector, Airflow or the CLI run their code."""

from __future__ import annotations

import io
import stat
import uuid
from datetime import UTC, datetime

import joblib
import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from pulse.config import Settings
from pulse.db import engine
from pulse.modeling.registry import ModelRun, load_champion, load_run, save_runs
from pulse.modeling.signing import KEY_FILE, ModelSignatureError

NOW = datetime(2026, 5, 1, tzinfo=UTC)


class Exploit:
    """What an attacker would store: unpickling it writes a file (it could run anything)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _run(model_name: str, champion: bool) -> ModelRun:
    return ModelRun(
        run_id=uuid.uuid4().hex,
        training_id="t",
        model_name=model_name,
        algorithm="logistic_regression",
        kind="classification",
        feature_service="purchase_propensity_v1",
        trained_at=NOW,
        data_end=NOW,
        holdout_at=NOW,
        horizon_days=7,
        n_train=20,
        n_holdout=0,
        features=["x"],
        selection_metric="auc",
        status="champion" if champion else "challenger",
        is_champion=champion,
    )


def _model() -> LogisticRegression:
    x = np.arange(20, dtype=float).reshape(-1, 1)
    return LogisticRegression().fit(x, (x[:, 0] > 9).astype(int))


def _set(settings: Settings, run_id: str, **values) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(f"update ml.model_runs set {assignments} where run_id = :r"), {**values, "r": run_id}
        )


def test_a_tampered_model_row_is_refused_before_unpickling(settings, tmp_path):
    champion, other = _run("purchase_propensity", True), _run("churn_90d", True)
    save_runs([(champion, _model(), {}), (other, _model(), {})], settings)
    run, model = load_champion("purchase_propensity", settings)
    assert run.run_id == champion.run_id and model.predict([[15.0]])[0] == 1

    # The artefact swapped for a pickle that runs code: refused, and its code never ran.
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    joblib.dump(Exploit(str(marker)), buffer)
    _set(settings, champion.run_id, artifact=buffer.getvalue())
    with pytest.raises(ModelSignatureError, match="does not match its signature"):
        load_champion("purchase_propensity", settings)
    assert not marker.exists()

    # Another run's signed artefact and signature copied over: bound to its run, so refused too.
    with engine(settings).connect() as conn:
        artifact, signature = conn.execute(
            sa.text("select artifact, artifact_signature from ml.model_runs where run_id = :r"),
            {"r": other.run_id},
        ).one()
    _set(settings, champion.run_id, artifact=artifact, artifact_signature=signature)
    with pytest.raises(ModelSignatureError, match="does not match"):
        load_run(champion.run_id, settings)

    # No signature at all (a row written by hand, or before signing existed).
    _set(settings, other.run_id, artifact_signature=None)
    with pytest.raises(ModelSignatureError, match="no signature"):
        load_run(other.run_id, settings)


def test_key_from_the_environment_or_generated_into_pulse_home(settings, monkeypatch):
    run = _run("purchase_propensity", True)
    save_runs([(run, _model(), {})], settings)
    key_file = settings.home_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # local default: generated, owner only
    assert load_run(run.run_id, settings)[1] is not None

    # A deployment sets the key: models signed with the local one no longer load ...
    monkeypatch.setenv("PULSE_MODEL_SIGNING_KEY", "k" * 40)
    with pytest.raises(ModelSignatureError):
        load_run(run.run_id, Settings())
    # ... unless it is named as the previous key (a rotation), and new ones are signed with the new key.
    monkeypatch.setenv("PULSE_MODEL_SIGNING_KEY_PREVIOUS", key_file.read_text())
    assert load_run(run.run_id, Settings())[1] is not None
    fresh = _run("churn_90d", True)
    save_runs([(fresh, _model(), {})], Settings())
    monkeypatch.delenv("PULSE_MODEL_SIGNING_KEY_PREVIOUS")
    assert load_run(fresh.run_id, Settings())[1] is not None

    monkeypatch.setenv("PULSE_MODEL_SIGNING_KEY", "short")
    with pytest.raises(ModelSignatureError, match="at least 32"):
        load_run(fresh.run_id, Settings())
