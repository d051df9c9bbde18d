# One entry point for set-up, checks, tests and benchmarks.
SHELL := /bin/bash
PY ?= python3
VENV ?= venv
VPY := $(VENV)/bin/python
export SELDON_ROLLOUT_CACHE ?= $(HOME)/.cache/seldon-rollout

.PHONY: deps venv setup test test-fast fuzz check lint typecheck bench

deps:
	scripts/install-deps

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Everything the tests need on a fresh machine: system packages, the venv, the built toolchain.
setup: deps venv toolchain

# Everything, on TEST_WORKERS pytest-xdist workers. Each worker starts its own API server, data plane and
# Prometheus when its tests need them (loopback, free ports, its own cluster directory), so tests of one
# file may run side by side; `worksteal` keeps the workers busy when a few e2e tests take minutes. Most of
# an e2e test is waiting for its schedule, which is why there are more workers than cores.
TEST_WORKERS ?= 4
test: setup
	SELDON_ROLLOUT_REQUIRE_TOOLCHAIN=1 scripts/run-tests -n $(TEST_WORKERS) --dist worksteal --durations=20

# The edit-test loop: every test that needs no built toolchain (no engine, no API server), in parallel.
test-fast: venv
	scripts/run-tests -m "not engine" -n 2 --dist loadfile --durations=10

# New random examples for the property tests (`make test` draws the same ones every run), with fifty times
# the lifecycle sequences; a failure prints how to reproduce it and is replayed first next time.
fuzz: venv
	SELDON_ROLLOUT_FUZZ=1 SELDON_ROLLOUT_LIFECYCLE_EXAMPLES=2000 scripts/run-tests -m "not engine" -n 2 \
		tests/rollout/test_lifecycle.py tests/rollout/test_provider_state.py tests/rollout/test_sequential.py \
		tests/rollout/test_sequential_state.py tests/rollout/test_weights.py tests/test_config_corpus.py

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

bench: venv
	$(VPY) benchmarks/iteration.py

# Toolchain, local cluster, demo and decision benchmark targets live beside this file.
-include mk/*.mk
