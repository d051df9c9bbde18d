"""When the demo starts its next `pulumi up`, so that the iteration lands just after the interval.

An `up` spends some seconds (the lead) before the experiment's diff runs; starting the next one at
`lastIterationAt + intervalSeconds - lead + margin` keeps iterations about `intervalSeconds` apart
instead of `intervalSeconds + lead`. Reads the experiment record on stdin; arguments: the start time
of the `up` just run and the lead measured so far. Prints: seconds to wait, and the lead.
"""

from __future__ import annotations

import json
import sys
import time

MARGIN = 1.0
"""Seconds of slack: an `up` that arrives before the interval is a no-op, and costs one more run."""


def main(started: float, lead: float) -> None:
    record = json.load(sys.stdin)
    last = float(record["lastIterationAt"])
    if last >= started:  # this `up` ran an iteration: measure how long it took to reach it
        lead = last - started
    wait = max(0.0, last + float(record["spec"]["intervalSeconds"]) - lead + MARGIN - time.time())
    print(f"{wait:.2f} {lead:.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]))
