# sllen-service: `make run` starts everything locally, `make test` runs the whole suite.
# Both bootstrap a venv on a fresh machine; nothing else needs installing by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Serving needs Triton + ONNX Runtime + Redis; tests also need the model stack (CPU torch).
SERVE_EXTRAS := local
TEST_EXTRAS := local,dev,model

.PHONY: help install install-test run test test-unit test-integration lint format clean
help:
	@echo "make run        start Redis, Triton, worker(s) and the gateway on 127.0.0.1:$${SLLEN_PORT:-8000}"
	@echo "make test       install and run the whole test suite (real Redis and Triton)"
	@echo "make lint       ruff + mypy --strict on the service and testkit"
	@echo "make train      train (or resume) the model in the background (mk/model.mk)"
	@echo "make eval       the evaluation table: SLLEN vs baselines vs the ablation"
	@echo "make export     checkpoint -> checked ONNX in model_repository/ (also export-ablation)"
	@echo "make checkpoint-save RUN=runs/small   keep a resumable checkpoint in checkpoints/"
	@echo "make bench      raw model vs the whole stack;  make loadtest LOAD_HOST=..."

$(VENV)/.serve: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(SERVE_EXTRAS)]'
	@touch $@

$(VENV)/.test: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(TEST_EXTRAS)]'
	@touch $@ $(VENV)/.serve

install: $(VENV)/.serve
install-test: $(VENV)/.test

run: install
	exec $(PY) -m service.cli run

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install-test
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install-test
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: install-test
	$(PY) -m ruff check service sllen tests benchmarks testkit
	$(PY) -m ruff format --check service sllen tests benchmarks testkit
	$(PY) -m mypy

format: install-test
	$(PY) -m ruff format service sllen tests benchmarks testkit
	$(PY) -m ruff check --fix service sllen tests benchmarks testkit

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache

-include mk/model.mk

# Load test any deployment: `make loadtest LOAD_HOST=https://sllen.example` (default: `make run`).
LOAD_HOST ?= http://127.0.0.1:$${SLLEN_PORT:-8000}
.PHONY: loadtest bench
loadtest: install-test
	mkdir -p .run/loadtest
	$(VENV)/bin/locust -f tests/load/locustfile.py --host $(LOAD_HOST) --headless \
		--csv .run/loadtest/run --html .run/loadtest/report.html --only-summary; \
		status=$$?; $(PY) -m benchmarks.summarise_locust .run/loadtest/run_stats.csv; exit $$status

# Raw model vs the whole stack, on this machine, in one run (starts its own stack).
bench: install-test
	$(PY) -m benchmarks.bench
