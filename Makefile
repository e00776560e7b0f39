# Every entry point installs and starts what it needs; each step is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# Nothing is exported: the commands' own defaults (workflows/settings.py) are what
# make uses too, so a plain shell after `make setup` finds the same engine and state.
STATE_DIR := $(or $(SUPPORT_AGENT_STATE_DIR),$(HOME)/.local/state/support-agent)

.PHONY: help setup venv browser engine engine-stop worker demo test test-unit lint bench clean

help:
	@echo "make demo    set everything up, run two sample tickets, stop"
	@echo "make test    set everything up, run unit, integration and e2e tests"
	@echo "make bench   run the benchmarks"
	@echo "make setup   only set up (venv, Docker, Postgres, engine build, sandbox image)"
	@echo "make engine / make engine-stop / make worker   run the pieces by hand"
	@echo "make lint    ruff and mypy --strict (packages, tests, benchmarks)"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

setup: venv
	@start=$$EPOCHREALTIME; \
	bash setup/docker.sh && bash setup/postgres.sh && bash setup/hatchet.sh && bash setup/seaweedfs.sh && \
	{ bash setup/dashboard.sh || echo "[setup] warning: no dashboard build; the engine runs without one"; } && \
	image=$$(bash setup/sandbox-image.sh) && \
	echo "$$image" > $(STATE_DIR)/sandbox-image && \
	awk -v s=$$start -v e=$$EPOCHREALTIME -v i="$$image" 'BEGIN { printf "[setup] done in %.1f s (sandbox image %s)\n", e - s, i }'

# Chromium for the dashboard's browser test (Debian's packages; nothing is downloaded).
browser:
	@bash setup/browser.sh

engine: setup
	@$(BIN)/support-agent engine start

engine-stop: venv
	@$(BIN)/support-agent engine stop

worker: engine
	@$(BIN)/support-agent worker

demo: setup
	@$(BIN)/support-agent demo

# The test session starts the engine itself if none is running (and stops it after).
test: setup browser lint
	@bash setup/hatchet.sh --test
	@$(BIN)/pytest -p no:cacheprovider tests/unit tests/integration tests/e2e

test-unit: venv
	@$(BIN)/pytest -p no:cacheprovider tests/unit

lint: venv
	@$(BIN)/ruff check agent evidence sandbox workflows cli api tests benchmarks
	@$(BIN)/mypy

bench: setup
	@$(BIN)/support-agent engine start
	@$(PY) -m benchmarks

clean:
	-@$(BIN)/support-agent engine stop
	rm -rf $(VENV)
