# One entry point for set-up, checks, tests and benchmarks.
SHELL := /bin/bash
PY ?= python3
VENV ?= venv
VPY := $(VENV)/bin/python
export SELDON_ROLLOUT_CACHE ?= $(HOME)/.cache/seldon-rollout

.PHONY: deps venv setup test test-fast check lint typecheck bench

deps:
	scripts/install-deps

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Everything the tests need on a fresh machine: system packages, the venv, the built toolchain.
setup: deps venv toolchain

# Everything, on TEST_WORKERS pytest-xdist workers (a test file stays on one worker, so its module
# fixtures start once; each worker starts its own API server and Prometheus when its tests need them).
TEST_WORKERS ?= 3
test: setup
	SELDON_ROLLOUT_REQUIRE_TOOLCHAIN=1 scripts/run-tests -n $(TEST_WORKERS) --dist loadfile --durations=20

# The edit-test loop: every test that needs no built toolchain (no engine, no API server), in parallel.
test-fast: venv
	scripts/run-tests -m "not engine" -n 2 --dist loadfile --durations=10

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

bench: venv
	$(VPY) benchmarks/iteration.py

# Toolchain, local cluster, demo and decision benchmark targets live beside this file.
-include mk/*.mk
