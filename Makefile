# Pulse: `make demo` runs the whole flow on simulated data, `make test` runs the tests.
# Both create .venv and install the pinned stack (constraints.txt) the first time; later runs reuse it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
# Parallel test workers (2 cores here); override with `make test WORKERS=1`.
WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format clean airflow
# System packages the browser and compose tests use (Debian's; installed by `make test` when missing).
CHROMIUM := /usr/bin/chromium
DOCKER_COMPOSE := /usr/bin/docker-compose
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Pulse needs Python 3.11 ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Pulse with its pinned dependencies

demo: $(STAMP) ## Run the whole flow on simulated data (about 2,000 customers, 60 days) and print a report
	$(BIN)/pulse demo

test: $(STAMP) $(CHROMIUM) $(DOCKER_COMPOSE) ## Run the test suite against real PostgreSQL, Redis, dbt, Feast and Airflow
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup

$(CHROMIUM) $(DOCKER_COMPOSE):
	@command -v apt-get >/dev/null 2>&1 || { echo "$@ is missing and apt-get is not available: install Debian's $(notdir $@) package"; exit 1; }
	apt-get update -qq && $(APT_INSTALL) $(notdir $@)

airflow: $(STAMP) ## Start Airflow (standalone) with Pulse's DAGs; prints the UI address and login
	$(BIN)/pulse airflow

test-fast: $(STAMP) ## Every test but the end-to-end runs (unit, integration, DAGs)
	$(BIN)/python -m pytest -m "not e2e" -n $(WORKERS)

lint: $(STAMP) ## ruff lint + format check, mypy on src/, sqlfluff on the dbt models
	$(BIN)/ruff check src dags plugins tests bench feature_repo
	$(BIN)/ruff format --check src dags plugins tests bench feature_repo
	$(BIN)/mypy
	cd dbt_project && ../$(BIN)/sqlfluff lint .

format: $(STAMP) ## Apply ruff formatting and fixes
	$(BIN)/ruff format src dags plugins tests bench feature_repo
	$(BIN)/ruff check --fix src dags plugins tests bench feature_repo

clean: ## Stop the embedded PostgreSQL and remove .venv and .pulse
	-test -x $(BIN)/pulse && $(BIN)/pulse down
	rm -rf $(VENV) .pulse dbt_project/target dbt_project/logs
