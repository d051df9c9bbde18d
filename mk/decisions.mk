# Decision benchmark: iter8-v2, Flagger-like, Kayenta-like, sequential and a fixed-horizon oracle, simulated
# (benchmarks/decisions.py): the exact-count scenarios (benchmarks/world.py) and the data-path worlds read
# through Prometheus' semantics (benchmarks/dataworlds.py, benchmarks/promql.py). `bench-decisions` writes
# build/decisions.json and build/decisions.md only; `bench-decisions-quick` is the same at a tenth of the runs
# (a few minutes, indicative figures); `docs-decisions` also rewrites the tracked docs/decisions.md and
# docs/decisions.png; `docs-decisions-worlds` rewrites only the data-path worlds' section of docs/decisions.md.
.PHONY: bench-decisions bench-decisions-quick docs-decisions docs-decisions-worlds

bench-decisions: venv
	$(VPY) benchmarks/decisions.py

bench-decisions-quick: venv
	$(VPY) benchmarks/decisions.py --quick

docs-decisions: venv
	$(VPY) benchmarks/decisions.py --docs

docs-decisions-worlds: venv
	$(VPY) benchmarks/decisions.py --only worlds --docs-worlds
