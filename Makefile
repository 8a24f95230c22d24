# medrec developer tasks. `make test` is what CI runs (through .ci/run).

VENV ?= .venv
# The first of these that is Python 3.11 or newer; override with `make PYTHON=/path/to/python3`.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)
# The contract the exported schema must keep (see .ci/check_contract.py).
CONTRACT ?= ../shared/contract/schema.graphql
PYTEST_ARGS ?=
# Extra pip-compile options for `make lock`, e.g. LOCK_ARGS=--upgrade
LOCK_ARGS ?=

STAMP := $(VENV)/.medrec-installed
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

.PHONY: venv run test lint typecheck pytest contract lock fuzz

venv: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: medrec needs Python 3.11 or newer; python3 is $$(python3 --version 2>&1)." >&2; \
		echo "       Install python3.11 or run: make PYTHON=/path/to/python3.11 ..." >&2; \
		exit 1; \
	elif ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "error: medrec needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)." >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -r requirements-dev.lock
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $@

# `make run PORT=8001` when 8000 is taken; ARGS adds options, e.g. ARGS="--host 0.0.0.0".
PORT ?= 8000
ARGS ?=
run: venv
	$(VENV)/bin/medrec dev --port $(PORT) $(ARGS)

# Record-status events of the `make run` server as JSON lines, with a token its banner printed:
# make watch TOKEN=eyJ... (PORT as for run; ARGS="--record <id>" or "--patient <id>" narrows).
.PHONY: watch
watch: venv
	@[ -n "$(TOKEN)" ] || { echo "usage: make watch TOKEN=<a token make run printed>" >&2; exit 2; }
	$(VENV)/bin/medrec watch --url ws://127.0.0.1:$(PORT)/graphql --token "$(TOKEN)" $(ARGS)

test: lint typecheck pytest contract

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy .ci/check_contract.py

pytest: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The property tests of tests/fuzz with many more examples than `make test` runs, and fresh
# randomness each time (MEDREC_FUZZ_EXAMPLES set turns derandomize off).
FUZZ_EXAMPLES ?= 2000
fuzz: venv
	MEDREC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest tests/fuzz $(PYTEST_ARGS)

contract: venv
	@set -eu; \
	exported=$$(mktemp); trap 'rm -f "$$exported"' EXIT; \
	echo "$(VENV)/bin/medrec export-schema > $$exported"; \
	$(VENV)/bin/medrec export-schema > "$$exported"; \
	if ! diff -u schema/schema.graphql "$$exported"; then \
		echo "error: schema/schema.graphql differs from what the code exports (diff above)." >&2; \
		echo "       Regenerate it: $(VENV)/bin/medrec export-schema > schema/schema.graphql" >&2; \
		exit 1; \
	fi; \
	if [ -f "$(CONTRACT)" ]; then \
		echo "$(VENV)/bin/python .ci/check_contract.py $(CONTRACT) $$exported"; \
		$(VENV)/bin/python .ci/check_contract.py "$(CONTRACT)" "$$exported"; \
	else \
		echo "notice: contract $(CONTRACT) not found; skipping the contract compatibility check."; \
	fi

lock: venv
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock pyproject.toml

# Load benchmarks (README, "Benchmarks"); BENCH_DURATION, BENCH_SHAPES, BENCH_SOAK... pass through
# the environment. wrk comes from Debian's packages, PostGraphile from bench/package-lock.json.
BENCH_NEEDS_WRK = @command -v wrk >/dev/null 2>&1 || { \
	echo "wrk not found: installing it with apt-get"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update && $$sudo apt-get install -y wrk; }

.PHONY: bench bench-peers

bench: venv
	$(BENCH_NEEDS_WRK)
	$(VENV)/bin/python -m bench

bench-peers: venv
	$(BENCH_NEEDS_WRK)
	@command -v npm >/dev/null 2>&1 || { echo "error: bench-peers needs node and npm" >&2; exit 1; }
	@[ -d bench/node_modules ] || { echo "cd bench && npm ci"; cd bench && npm ci --no-audit --no-fund; }
	$(VENV)/bin/python -m bench --peers
