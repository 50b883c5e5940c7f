#!/usr/bin/env bash
# docker-compose's airflow-init: runs once before the Airflow services start. Idempotent.
set -euo pipefail
airflow db migrate
pulse up --roles >/dev/null       # Pulse's schemas, least-privilege roles and the services' logins
# The simple auth manager's login: admin / $AIRFLOW_ADMIN_PASSWORD (shared with the api-server by a volume).
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
PY
# The dbt manifest the transform DAG renders from (the dag-processor re-makes it when models change).
python -c "from pulse.pipeline import dbt_manifest; print(dbt_manifest())"
