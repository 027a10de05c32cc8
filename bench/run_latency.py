#!/usr/bin/env python3
"""Time `run --rm --network none IMAGE true` for berth and Docker, alternating, and print the
medians and the ratio (berth / Docker). A benchmark, not a test: run it by hand as root.

    .venv/bin/python bench/run_latency.py [-n 30]

The engines are private ones (see _engines.py); Docker's only where dockerd is installed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics

from _engines import BIN, engines, summary, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="runs per engine")
    ap.add_argument(
        "--network",
        default="none",
        choices=["none", "bridge"],
        help="none (issue 2's figure) or the default bridge (issue 7's)",
    )
    args = ap.parse_args()
    with engines(bridge=args.network == "bridge") as (benv, denv):
        berth_cmd = [
            str(BIN / "berth"),
            "run",
            "--rm",
            "--network",
            args.network,
            "benchbox",
            "true",
        ]
        docker = shutil.which("docker") or "docker"
        docker_cmd = [
            docker,
            "run",
            "--rm",
            "--network",
            args.network,
            "--pull",
            "never",
            "benchbox",
            "true",
        ]
        # the docker CLI against berthd: the same client, the other engine
        dcli_berth_env = {
            **benv,
            "DOCKER_HOST": benv["BERTH_HOST"],
            "DOCKER_CONFIG": benv["BENCH_FORKSERVER"] + ".docker-cfg",
        }
        for _ in range(3):  # warm-up
            timed(berth_cmd, benv)
            if denv:
                timed(docker_cmd, denv)
        b: list[float] = []
        d: list[float] = []
        db: list[float] = []
        for _ in range(args.n):
            b.append(timed(berth_cmd, benv))
            if denv:
                d.append(timed(docker_cmd, denv))
            if shutil.which("docker"):
                db.append(timed(docker_cmd, dcli_berth_env))
        print(f"run --rm --network {args.network} IMAGE true, {args.n} runs each, alternating")
        print(f"  berth  (berth CLI -> berthd):   {summary(b)}")
        if db:
            print(f"  berth  (docker CLI -> berthd):  {summary(db)}")
        if d:
            print(f"  docker (docker CLI -> dockerd): {summary(d)}")
            print(
                f"  ratio berth/docker (medians):   "
                f"{statistics.median(b) / statistics.median(d):.2f}"
            )
        else:
            print("  docker: no Docker daemon here (install docker.io, or set DOCKER_HOST)")


if __name__ == "__main__":
    main()
