#!/usr/bin/env python3
"""Issue 16's compose figures: `up -d` of a 5-service project from locally built images, `up -d`
again with no change (target: at most 0.3 s, and at most 0.2x docker-compose on dockerd), and
`down -v`; berth compose on berthd against Debian's docker-compose 1.29 on dockerd, where both
are installed. Nothing is pulled: the images are built here from the imported busybox.

    .venv/bin/python bench/compose.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from _engines import BIN, engines, summary, timed

PROJECT = """\
services:
  web:
    image: benchapp
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1::80"]
    depends_on: [api]
  api:
    image: benchapp
    command: ["sleep", "3600"]
    environment: {ROLE: api}
    depends_on: [db, cache]
  worker:
    image: benchapp
    command: ["sleep", "3600"]
    depends_on: [db]
  cache:
    image: benchapp
    command: ["sleep", "3600"]
  db:
    image: benchapp
    command: ["sleep", "3600"]
    volumes: ["dbdata:/data"]
volumes:
  dbdata: {}
"""


def measure(
    compose: list[str], cli: list[str], env: dict[str, str], work: Path, repeat: int
) -> dict[str, list[float]]:
    env = {**env, "XDG_CACHE_HOME": str(work / ".cache")}  # berth compose's validation cache
    ctx = work / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM benchbox\nCOPY index.html /www/index.html\n")
    (ctx / "index.html").write_text("bench\n")
    subprocess.run(
        [*cli, "build", "-q", "-t", "benchapp", str(ctx)], env=env, check=True, capture_output=True
    )
    (work / "compose.yaml").write_text(PROJECT)
    times: dict[str, list[float]] = {"up -d": [], "up -d, no change": [], "down -v": []}
    cmd = [*compose, "-f", str(work / "compose.yaml"), "-p", "benchcompose"]
    try:
        for _ in range(repeat):
            times["up -d"].append(timed([*cmd, "up", "-d"], env))
            for _ in range(3):
                times["up -d, no change"].append(timed([*cmd, "up", "-d"], env))
            times["down -v"].append(timed([*cmd, "down", "-v", "-t", "1"], env))
    finally:
        subprocess.run([*cmd, "down", "-v", "-t", "1"], env=env, capture_output=True)
        subprocess.run([*cli, "rmi", "benchapp"], env=env, capture_output=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    berth = [str(BIN / "berth")]
    results: dict[str, dict[str, list[float]]] = {}
    with engines(bridge=True) as (benv, denv), tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "b").mkdir()
        results["berth compose on berthd"] = measure(
            [*berth, "compose"], berth, benv, Path(tmp) / "b", args.repeat
        )
        dc = shutil.which("docker-compose")
        docker = shutil.which("docker")
        if dc:
            (Path(tmp) / "bd").mkdir()
            results["docker-compose 1.29 on berthd"] = measure(
                [dc],
                berth,
                {**benv, "DOCKER_HOST": benv["BERTH_HOST"]},
                Path(tmp) / "bd",
                args.repeat,
            )
        if dc and docker and denv is not None:
            (Path(tmp) / "d").mkdir()
            results["docker-compose 1.29 on dockerd"] = measure(
                [dc], [docker], denv, Path(tmp) / "d", args.repeat
            )
    for who, times in results.items():
        for what, xs in times.items():
            print(f"{who:32} {what:18} {summary(xs)}")
    mine = statistics.median(results["berth compose on berthd"]["up -d, no change"])
    line = f"up -d with no change: berth {mine:.3f} s (target <= 0.3 s)"
    ref = results.get("docker-compose 1.29 on dockerd")
    if ref:
        theirs = statistics.median(ref["up -d, no change"])
        line += (
            f", docker-compose on dockerd {theirs:.3f} s, ratio {mine / theirs:.2f} (target <= 0.2)"
        )
    print(line)


if __name__ == "__main__":
    main()
