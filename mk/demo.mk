# The main job on the local default environment (see README: `make demo`).
.PHONY: demo demo-down

demo: setup
	scripts/demo up

demo-down:
	scripts/demo down

.PHONY: bench-up
bench-up: setup
	$(VPY) benchmarks/rollout_up.py
