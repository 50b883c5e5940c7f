# One image for every Pulse service in docker-compose.yml: Airflow components, the Feast feature server
# and the pulse CLI. Dependencies are pinned by constraints.txt.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    AIRFLOW_HOME=/opt/airflow \
    PULSE_HOME=/opt/pulse/.pulse

RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pulse
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install -c constraints.txt -e .
COPY . .
