# The two commands of the README. Each creates .venv if missing and installs into it,
# so a fresh machine with only python3 and make needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo lint install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Tests and notebooks never touch your database: IMS_DB points at a fresh temporary file.
test: lint
	IMS_DB="$$(mktemp -d)/ims-test.db" $(BIN)/python -m pytest --nbmake tests notebooks

demo: install
	$(BIN)/ims init
	$(BIN)/ims models

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
