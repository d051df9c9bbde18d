# Decision benchmark: iter8-v2, Flagger-like, Kayenta-like, sequential and a fixed-horizon oracle, simulated
# (benchmarks/decisions.py). `bench-decisions` writes build/decisions.json and build/decisions.md only;
# `docs-decisions` also rewrites the tracked docs/decisions.md and docs/decisions.png.
.PHONY: bench-decisions docs-decisions

bench-decisions: venv
	$(VPY) benchmarks/decisions.py

docs-decisions: venv
	$(VPY) benchmarks/decisions.py --docs
