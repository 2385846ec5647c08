# The README's two commands: `make demo` and `make test`. Everything installs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-runtime.txt requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)

.PHONY: venv services test lint demo bench clean airflow-rehearsal airflow-rehearsal-celery mwaa-check

$(STAMP): requirements-runtime.txt requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV): several minutes on a fresh machine (about 6), seconds afterwards..."
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

services:
	@scripts/start_services.sh

test: venv services
	$(PY) -m pytest -q

# A real Airflow (scheduler, dag-processor, api-server; PostgreSQL metadata DB) deployed as the
# README says, with PASS/FAIL lines; under 6 minutes (scripts/airflow_rehearsal.py).
airflow-rehearsal: venv services
	$(PY) scripts/airflow_rehearsal.py

# The same deployment on the CeleryExecutor: Redis broker, two workers with their own folders, the
# S3 stores on a local moto server (README "Running on more than one worker"); about 5 minutes.
airflow-rehearsal-celery: venv services
	$(PY) scripts/airflow_rehearsal_celery.py

# requirements-runtime.txt resolves with the pinned apache-airflow from PyPI (pip --dry-run in a
# clean venv, about a minute; part of `make test` too). README, "Deploying to Amazon MWAA".
mwaa-check: venv
	$(PY) -m pytest -q -m pypi tests/test_packaging.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: venv
	@scripts/demo.sh

bench: venv services
	$(PY) scripts/benchmark.py $(BENCH_ARGS)

clean:
	rm -rf .local gx/uncommitted
