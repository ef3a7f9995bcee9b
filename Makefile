# Applause — developer and operator entry points. Everything runs from .venv,
# which is created and (re)installed only when the requirements files change.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
CORES  := $(shell nproc 2>/dev/null || echo 1)

.PHONY: help venv venv-dev test test-fast run serve worker beat bench chaos lint fmt

help:
	@echo "make run      - local dev: migrate, seed, web + celery + localstripe (Ctrl-C stops all)"
	@echo "make test     - lint, types, migrations/schema checks and pytest on throwaway services"
	@echo "make test-fast - the same checks, pytest without browser and slow tests (~1:40 quiet)"
	@echo "make serve    - production web server (gunicorn threaded workers, or WEB_SERVER=granian; DEBUG off)"
	@echo "make worker   - celery worker;  make beat - celery beat (database scheduler)"
	@echo "make bench    - benchmarks;     make chaos - failure-injection run"
	@echo "make lint     - ruff check + format check;  make fmt - ruff format + fix"

# ------------------------------------------------------------------ virtualenv
$(PY):
	@python3 -c 'import ensurepip' 2>/dev/null || \
		(DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv)
	python3 -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed

venv-dev: $(VENV)/.installed-dev

# ------------------------------------------------------------------ tests & quality
test: venv-dev
	scripts/with_services.sh scripts/test.sh

# The inner loop: every check of make test, pytest without the browser and slow (chaos,
# bench, race, backup) tests. make test stays the gate. Quiet 2-core machine: 1:38 (pytest
# 1:34, the type and schema checks beside it).
test-fast: venv-dev
	scripts/with_services.sh scripts/test.sh --fast

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# ------------------------------------------------------------------ running
run: venv
	$(PY) scripts/run.py

# Production web server on the configured services. Never migrates.
serve: venv
	DEBUG=0 $(PY) scripts/serve.py

worker: venv
	DEBUG=0 $(VENV)/bin/celery -A config worker -l info --concurrency $(CORES)

beat: venv
	DEBUG=0 $(VENV)/bin/celery -A config beat -l info \
		--scheduler config.beat:DatabaseScheduler

# ------------------------------------------------------------------ benchmarks
# Durable PostgreSQL (fsync, synchronous_commit, full_page_writes on), as in production.
# make bench BENCH=bulk runs one section (step names: pgbench, gift_send, http, bulk, ...).
bench: venv-dev
	$(if $(BENCH),BENCH_ONLY=$(BENCH)) APPLAUSE_PG_DURABLE=1 scripts/with_services.sh $(PY) bench/run.py

chaos: venv-dev
	APPLAUSE_PG_DURABLE=1 scripts/with_services.sh $(PY) bench/chaos.py
