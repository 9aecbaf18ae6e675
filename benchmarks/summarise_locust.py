"""Print the summary of a locust `--csv` run: requests, failures, RPS and latency percentiles."""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    with Path(argv[0]).open() as f:
        rows = list(csv.DictReader(f))
    head = ("reqs", "fail", "rps", "p50", "p95", "p99")
    print(f"{'name':<28} " + " ".join(f"{h:>6}" for h in head) + f" {'max':>7}")
    for row in rows:
        print(
            f"{row['Name'][:28]:<28} {row['Request Count']:>6} {row['Failure Count']:>5} "
            f"{float(row['Requests/s']):>6.2f} {row['50%']:>6} {row['95%']:>6} {row['99%']:>6} "
            f"{float(row['Max Response Time']):>7.0f}"
        )
    print("latencies in ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
