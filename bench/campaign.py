#!/usr/bin/env python3
"""Issue 17's reliability campaigns, run and summed up: crashes survived (berthd and shim
hosts killed with SIGKILL), faults tried, containers soaked with the before/after table of
what berthd and the host hold.

    .venv/bin/python bench/campaign.py [--long] [--only crash,faults,soak]

--long sets BERTH_CAMPAIGN_LONG=1: 100 crash instants, 20 shim kills, 1,000 containers soaked
over at least 30 minutes. Needs root, as the tests do. Each campaign is its pytest file under
tests/campaigns/; their figures come back as JSON lines in a file named by
BERTH_CAMPAIGN_REPORT."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "crash": "tests/campaigns/test_crash.py",
    "faults": "tests/campaigns/test_faults.py",
    "soak": "tests/campaigns/test_soak.py",
}


def run(names: list[str], long: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        env = {**os.environ, "BERTH_CAMPAIGN_REPORT": str(report)}
        if long:
            env["BERTH_CAMPAIGN_LONG"] = "1"
        codes = {}
        for name in names:
            t = time.monotonic()
            r = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", FILES[name]],
                cwd=ROOT,
                env=env,
            )
            codes[name] = r.returncode
            print(f"== {name}: exit {r.returncode} in {time.monotonic() - t:.0f} s", flush=True)
        lines = report.read_text().splitlines() if report.exists() else []
    return [json.loads(line) for line in lines], codes


def show(figures: list[dict[str, Any]], codes: dict[str, int]) -> None:
    print()
    for f in figures:
        kind = f["campaign"]
        if kind == "crash":
            print(
                f"crash: berthd killed at {f['instants']} instants, survived {f['survived']} "
                f"({', '.join(f'{k} {v}' for k, v in f['by_workload'].items())}); "
                f"{f['calls']} client calls; orphans left {f['orphans_left']}; "
                f"seed {f['seed']}"
            )
        elif kind == "shim":
            print(f"shim: shim hosts killed {f['kills']} times; orphans left {f['orphans_left']}")
        elif kind == "faults":
            print(f"faults: {f['tried']} tried: {'; '.join(f['faults'])}")
        elif kind == "soak":
            print(
                f"soak: {f['containers']} containers in {f['seconds']} s; "
                f"before (after the first {f['after_first']}) / after:"
            )
            for k, (a, b) in f["before_after"].items():
                print(f"    {k:16} {a:>8} {b:>8}")
    bad = {k: v for k, v in codes.items() if v}
    print("all campaigns passed" if not bad else f"FAILED: {bad}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="the full counts (BERTH_CAMPAIGN_LONG=1)")
    p.add_argument(
        "--only",
        default=",".join(FILES),
        help="comma-separated campaigns to run: " + ", ".join(FILES),
    )
    a = p.parse_args()
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in FILES]
    if unknown:
        p.error(f"unknown campaigns: {unknown}")
    figures, codes = run(names, a.long)
    show(figures, codes)
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
