# One entry point for set-up, checks, tests and benchmarks.
SHELL := /bin/bash
PY ?= python3
VENV ?= venv
VPY := $(VENV)/bin/python
export SELDON_ROLLOUT_CACHE ?= $(HOME)/.cache/seldon-rollout

.PHONY: deps venv setup test check lint typecheck bench

deps:
	scripts/install-deps

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Everything the tests need on a fresh machine: system packages, the venv, the built toolchain.
setup: deps venv toolchain

test: setup
	SELDON_ROLLOUT_REQUIRE_TOOLCHAIN=1 scripts/run-tests

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

bench: venv
	$(VPY) benchmarks/iteration.py

# Toolchain, local cluster, demo and decision benchmark targets live beside this file.
-include mk/*.mk
