# regctl — two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs (torch first, pinned to the CPU
# build, then the project with every extra).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.regctl-installed

.PHONY: install browser demo test test-fast lint bench docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

# The web UI tests (tests/test_webui*.py) drive the system Chromium with Playwright
# (Playwright's own browser download does not work on these machines). Install both
# where possible; otherwise those tests fail with a message naming what is missing.
browser: install
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install -q playwright
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y chromium || (apt-get update && apt-get install -y chromium) || \
	      echo "note: could not install chromium: the web UI tests will fail"; \
	  else echo "note: no system Chromium (apt-get install -y chromium as root): the web UI tests will fail"; fi

test: install browser
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check registry_cli tests bench scripts
	$(BIN)/ruff format --check registry_cli tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/run_all.py

# docs/cli.md, the command reference, generated from the Typer app
docs: install
	$(BIN)/python scripts/gen_cli_docs.py

clean:
	rm -rf registry demo-work .pytest_cache
