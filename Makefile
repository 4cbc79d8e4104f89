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
# (Playwright's own browser download does not work on these machines); the OCI tests
# run Debian's docker-registry, skopeo and htpasswd (apache2-utils). Install them
# where possible; otherwise those tests fail (web UI) or skip (OCI), naming what is missing.
browser: install
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install -q playwright
	@pkgs=""; \
	  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || pkgs="chromium"; \
	  command -v skopeo >/dev/null 2>&1 || pkgs="$$pkgs skopeo"; \
	  command -v docker-registry >/dev/null 2>&1 || pkgs="$$pkgs docker-registry"; \
	  command -v htpasswd >/dev/null 2>&1 || pkgs="$$pkgs apache2-utils"; \
	  if [ -z "$$pkgs" ]; then :; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y $$pkgs || (apt-get update && apt-get install -y $$pkgs) || \
	      echo "note: could not install $$pkgs: the web UI tests fail, the OCI tests skip"; \
	  else echo "note: missing $$pkgs (apt-get install -y chromium skopeo docker-registry apache2-utils as root): the web UI tests fail, the OCI tests skip"; fi

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
