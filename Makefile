# whnode developer tasks. `make test` and `make demo` set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy whnode tests

test: lint
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/whnode demo

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
