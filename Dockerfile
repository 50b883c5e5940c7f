# One image for every Pulse service in docker-compose.yml: the Airflow components (and Celery workers),
# the collector / scoring API, the Feast feature server and the pulse CLI. Pinned by constraints.txt.
FROM python:3.11-slim

# Optional extras to install, e.g. `celery` (the Celery executor). docker-compose.yml sets it.
ARG PULSE_EXTRAS=celery

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    AIRFLOW_HOME=/opt/airflow \
    PULSE_HOME=/opt/pulse/.pulse

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pulse
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install -c constraints.txt -e ".${PULSE_EXTRAS:+[$PULSE_EXTRAS]}"
COPY . .

# Run as an unprivileged user; the named volumes inherit these owners on first use.
RUN useradd --uid 50000 --create-home pulse \
    && mkdir -p /opt/pulse/.pulse /opt/airflow/auth \
    && chown -R pulse /opt/pulse/.pulse /opt/airflow
USER pulse
