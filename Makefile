# The two commands a user needs: `make run` (the whole product) and `make test` (every test).
# Both create .venv and install what they need on a fresh clone.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run test lint venv clean bench compose-test

LINT_PATHS := shared services pipeline tests benchmarks

# `make run` installs what running needs (serving, search, TensorFlow, the CLI), `make test` adds
# the test and lint tools; whichever comes first creates the venv. pip writes ~3.4 GB here, so
# its byte-compile pass over TensorFlow and torch is skipped: Python compiles what it imports.
$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e ".[search,tf,train]"
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet --no-compile -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

## make run: data (synthetic `small` if data/ is empty), models and indexes if missing, then every service and the page
run: $(RUN_STAMP)
	$(BIN)/hmrec run

## make test: every test (unit, integration with real Redis and processes, browser)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## make compose-test: `docker compose up` on a real Docker engine (sets one up; root), checked through the page port
compose-test:
	tests/compose/run.sh

## make lint: ruff (rules, unused noqa, no stray print), ruff format, mypy with the pydantic plugin; CI runs it
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy shared services pipeline

clean:
	rm -rf output test-artifacts
