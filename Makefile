# The two commands of the README. Each creates .venv if missing and installs into it,
# so a fresh machine with only python3 and make needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo bench lint install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

# LiteLLM is only for comparison in the benchmarks: never a runtime or test dependency.
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# ruff, then the floors of docs/ARCHITECTURE.md (import-linter's contracts in pyproject.toml).
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Tests and notebooks never touch your database: IMS_DB points at a fresh temporary file.
test: lint
	IMS_DB="$$(mktemp -d)/ims-test.db" $(BIN)/python -m pytest --nbmake tests notebooks

# The offline demo, no API key: seed the registry, run a simulated workload in which two fault
# windows open circuits (both close again once their faults end: the Circuits page shows when),
# then serve the dashboard. It uses IMS_DB or the default database, so `ims simulate` in another
# terminal feeds the open dashboard.
DEMO_FAULTS ?= gemini-2.5-pro:overload@100-160,gpt-5-nano:rate_limit@180-230
DEMO_PORT ?= 8501
demo: install
	$(BIN)/ims init
	$(BIN)/ims simulate --requests 300 --faults "$(DEMO_FAULTS)" --seed 7
	@echo "ims: the dashboard is at http://localhost:$(DEMO_PORT) (Ctrl-C stops it)"
	@echo "ims: live traffic from another terminal:" \
		"IMS_DB=$$($(BIN)/python -c 'from ims_kit.kit import default_database; print(default_database())')" \
		"$(BIN)/ims simulate --rate 5 --requests 500"
	$(BIN)/streamlit run app.py --server.headless true --server.port $(DEMO_PORT) \
		--server.address 127.0.0.1 --browser.gatherUsageStats false

# Rewrites docs/BENCHMARKS.md (about 6 minutes on 2 cores); all traffic stays on 127.0.0.1.
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
