#!/usr/bin/env bash
# docker-compose's airflow-init: runs once before the Airflow services start. Idempotent.
set -euo pipefail
airflow db migrate
pulse up >/dev/null               # Pulse's schemas in the warehouse
# The simple auth manager's login: admin / $AIRFLOW_ADMIN_PASSWORD (shared with the api-server by a volume).
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"admin": os.environ.get("AIRFLOW_ADMIN_PASSWORD", "admin")}))
PY
# The dbt manifest the transform DAG renders from (the dag-processor re-makes it when models change).
python -c "from pulse.pipeline import dbt_manifest; print(dbt_manifest())"
