# volrisk: `make demo` and `make test` work on a fresh clone with only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test test-all bench lint clean server server-stop dev-panel

setup: $(STAMP)

# pip (not uv): uv ignores this machine's pip configuration and would pull a multi-GB CUDA torch.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,foundation]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flows.demo

# The default run skips tests marked slow; `make test-all` runs everything.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@set -e; for b in bench/*.py; do case $$b in bench/_*) continue;; esac; \
		echo "== $$b"; $(BIN)/python $$b; done

# The development (tuning) panel: synthetic + shipped realized series, into the configured warehouse.
dev-panel: $(STAMP)
	$(BIN)/volrisk dev-panel

lint: $(STAMP)
	$(BIN)/ruff check core tasks warehouse flows tests
	$(BIN)/mypy core tasks warehouse flows

# Local Prefect server (127.0.0.1:4200, home .volrisk/prefect-server) + workers + deployments.
server: $(STAMP)
	deployments/server.sh start

server-stop:
	deployments/server.sh stop

clean:
	rm -rf .volrisk reports .pytest_cache .mypy_cache .ruff_cache
