# The local data plane and its Prometheus (scripts/localenv; see docs/localenv.md).
.PHONY: localenv-up localenv-down localenv-status bench-dataplane

localenv-up: venv
	scripts/localenv up

localenv-down:
	scripts/localenv down

localenv-status:
	scripts/localenv status

bench-dataplane: venv
	$(VPY) benchmarks/dataplane.py
