"""`scripts/run-tests`, the test command: a selection that collects nothing must not pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_tests(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / "run-tests"), "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_a_selection_that_collects_no_test_fails() -> None:
    result = run_tests("tests/rollout/test_weights.py", "-k", "no_test_is_named_like_this")
    assert result.returncode == 5, result.stdout + result.stderr  # pytest's "no tests collected"


def test_a_selection_that_passes_exits_zero() -> None:
    result = run_tests("tests/rollout/test_weights.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
