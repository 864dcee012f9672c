# One command runner for developers, the README and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: all install run test lint fmt clean bench bench-quick bench-scale soak openapi fuzz

all: lint test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The Python client (clients/python), which tests/client/ drives against the service.
	$(BIN)/python -m pip install --quiet -e ./clients/python
	touch $@

# The sandbox on plain http: the console signs in over http too unless told otherwise (it signs
# in over https only anywhere else: docs/console.md).
run: install
	WA_CONSOLE_ALLOW_INSECURE=$${WA_CONSOLE_ALLOW_INSECURE:-true} \
		$(BIN)/wa-outbound serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Not in CI: 10 minutes at 300 messages/s on PostgreSQL + Redis (SOAK_ARGS="--duration-s 60").
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Not in CI: the fuzzers of the suite, deep: schemathesis with FUZZ_EXAMPLES examples per API
# operation and as many signed bodies per webhook test, against `wa-outbound serve` on
# PostgreSQL; the figures are written to fuzz-report.json (docs/operations.md#fuzzing).
FUZZ_EXAMPLES ?= 1000
fuzz: install
	rm -f fuzz-report.json
	WA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) WA_FUZZ_REPORT=fuzz-report.json $(BIN)/python -m pytest \
		tests/api/test_fuzz_api.py tests/api/test_fuzz_webhooks.py $(PYTEST_ARGS); \
		status=$$?; cat fuzz-report.json 2>/dev/null; exit $$status

lint: install
	$(BIN)/ruff check src tests migrations bench clients/python
	$(BIN)/ruff format --check src tests migrations bench clients/python
	$(BIN)/mypy src tests clients/python/src

# The committed OpenAPI document; tests/api/test_openapi_document.py fails when it is stale.
openapi: install
	$(BIN)/wa-outbound openapi --output openapi.json

fmt: install
	$(BIN)/ruff check --fix src tests migrations bench clients/python
	$(BIN)/ruff format src tests migrations bench clients/python

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache wa_outbound.db*

# The benchmark suite (docs/performance.md): real PostgreSQL and Redis, the service as a process.
# wrk generates the HTTP load when installed (apt-get install wrk); else an aiohttp process does.
bench: install
	$(BIN)/python -m pip install --quiet py-spy 2>/dev/null || true
	$(BIN)/python bench/run.py

bench-quick: install
	$(BIN)/python bench/run.py --quick

# Not in CI: the hot queries with the outbox at 10k, 1M and 5M rows (docs/performance.md, "Flat
# with size"; several minutes, about 5 GB of disk while it runs). SCALE_ARGS="--quick": 10k, 200k.
bench-scale: install
	$(BIN)/python bench/scale.py --plans bench/scale-plans.txt $(SCALE_ARGS)
