#!/usr/bin/env python3
"""Issue 6's figures: a Dockerfile of 10 steps over a 50 MB context of 5,000 small files,
berth against Docker's classic builder (DOCKER_BUILDKIT=0), alternating, in one run:

- cold: `build --no-cache`;
- no change: the same build again, every step from the cache (target: at most half Docker's);
- one file: one copied file changed, the steps from that COPY on run again.

    .venv/bin/python bench/build.py [-n 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _engines import BIN, engines, print_ratios, timed

DOCKERFILE = """\
FROM benchbox
ENV APP=/app
WORKDIR /app
COPY deps/ /app/deps/
RUN echo deps > /deps.txt
COPY src/ /app/src/
RUN find /app/src -type f | wc -l > /count
LABEL bench=1
EXPOSE 8080
CMD ["sh"]
"""


def make_context(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    for part in ("deps", "src"):
        for i in range(2500):
            d = root / part / f"d{i // 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:04d}.txt").write_bytes(os.urandom(5000) + b"x" * 5000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (each engine, alternating)")
    a = ap.parse_args()
    with engines() as (benv, denv), tempfile.TemporaryDirectory(prefix="berth-bench-build-") as t:
        ctx = Path(t) / "ctx"
        make_context(ctx)
        kinds = [("berth", [str(BIN / "berth")], benv)]
        if denv:
            kinds.append(
                ("docker", [shutil.which("docker") or "docker"], {**denv, "DOCKER_BUILDKIT": "0"})
            )
        times: dict[tuple[str, str], list[float]] = {}
        changed = ctx / "src" / "d12" / "f1234.txt"
        for i in range(a.n):
            for kind, cli, env in kinds if i % 2 == 0 else kinds[::-1]:
                base = [*cli, "build", "--network", "none", "-t", "bench/app:1", str(ctx)]
                times.setdefault((kind, "cold"), []).append(
                    timed([*base[:2], "--no-cache", *base[2:]], env)
                )
                times.setdefault((kind, "no change"), []).append(timed(base, env))
                changed.write_bytes(os.urandom(10000))
                times.setdefault((kind, "one file"), []).append(timed(base, env))
        print(f"Dockerfile of 10 steps, context of 5,000 files (50 MB); {a.n} rounds")
        print_ratios(times, [("cold", 1.0), ("no change", 0.5), ("one file", 1.0)])


if __name__ == "__main__":
    main()
