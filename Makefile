# The two commands of the README, and the checks.
#
#   make run         set up .venv and idp/node_modules, start the whole stack here
#                    (python -m hub.tools.devstack)
#   make test        set up the same and run the test suite in parallel (PYTEST_ARGS="-k orders -x"
#                    to narrow; PYTEST_WORKERS=0 to run it in one process)
#   make lint        ruff (lint and format) and mypy
#   make clean-data  wipe data/: Temporal history, hub database, simulator state, logs
#
# The project is (re)installed into .venv only when pyproject.toml is newer than the stamp;
# the OpenID provider's npm packages (idp/, Node.js 20.19+) by `npm ci` only when
# idp/package-lock.json is newer than what npm installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite waits on Temporal timers, servers and subprocesses far more than it computes, so
# two pytest-xdist workers (one per core) finish it in far less time than one. Each worker has
# its own Temporal dev server, simulators and identity provider; --dist loadfile keeps a file's
# module fixtures on one worker.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
PACKAGES := hub workflows activities adapters api simulators bench worker.py
NPM_STAMP := idp/node_modules/.package-lock.json

.PHONY: install run test lint clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Order-only on the interpreter: only a newer pyproject.toml triggers a reinstall, never the
# venv's own timestamps.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

$(NPM_STAMP): idp/package-lock.json idp/package.json
	@command -v node >/dev/null || { echo "Node.js 20.19 or newer is needed (the OpenID provider in idp/)" >&2; exit 1; }
	cd idp && npm ci --no-audit --no-fund
	touch $@

install: $(STAMP) $(NPM_STAMP)

run: $(STAMP) $(NPM_STAMP)
	$(BIN)/python -m hub.tools.devstack

# pytest exits 5 when it collected no test: that fails like any other non-zero status.
test: $(STAMP) $(NPM_STAMP)
	@echo "$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)"
	@$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)

# Refuses while the dev stack's ports are taken: wiping the files under a running stack
# would leave Temporal and the hub with state that no longer exists on disk.
clean-data:
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -m hub.tools.devstack --check-stopped; then \
		echo "make clean-data: stop the dev stack (Ctrl-C in its terminal) first" >&2; exit 1; \
	fi
	rm -rf data
	@echo "removed data/ (Temporal history, hub database, simulator state, logs); .env is kept"
