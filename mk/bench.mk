# Decision benchmark: iter8-v2 vs a Flagger-like schedule vs the sequential algorithm, simulated.
# Prints the table and rewrites docs/decisions.md and docs/decisions.png (a few minutes on 2 cores).
.PHONY: bench-decisions

bench-decisions: venv
	$(VPY) benchmarks/decisions.py
