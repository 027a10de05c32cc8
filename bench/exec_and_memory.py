#!/usr/bin/env python3
"""Issue 3's figures, berth against Docker on the same machine, in one run:

- `exec CTR true` latency, alternating, medians and ratio;
- memory the engine spends per running idle container: the proportional set size (PSS) of
  berthd, its fork servers, shim hosts and monitors (berth), or of dockerd, containerd and the shims
  (Docker), with N containers running minus idle, divided by N.

    .venv/bin/python bench/exec_and_memory.py [-n 30] [--containers 50] [--network bridge]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time

from _engines import BIN, engines, pids_matching, pss_kib, summary, timed


def engine_pss(env: dict[str, str], kind: str) -> int:
    if kind == "berth":
        pids = [int(env["BENCH_PID"])] + pids_matching(env["BENCH_FORKSERVER"])
    else:
        daemon = int(env["BENCH_PID"])
        pids = [daemon] + pids_matching("berthbench")  # containerd and shims of its namespace
    return pss_kib(sorted(set(pids)))


def per_container(
    cli: list[str], env: dict[str, str], kind: str, n: int, network: str = "none"
) -> float:
    time.sleep(1)
    idle = engine_pss(env, kind)
    ids = []
    for _ in range(n):
        r = subprocess.run(
            [
                *cli,
                "run",
                "-d",
                *(["--pull", "never"] if kind == "docker" else []),
                "--network",
                network,
                "benchbox",
                "sleep",
                "600",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(r.stdout.strip())
    time.sleep(2)
    busy = engine_pss(env, kind)
    subprocess.run([*cli, "rm", "-f", *ids], env=env, capture_output=True)
    return (busy - idle) / n / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="exec runs per engine")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument(
        "--network",
        default="none",
        choices=["none", "bridge"],
        help="the idle containers' network (the exec target's is none)",
    )
    args = ap.parse_args()
    docker = shutil.which("docker") or "docker"
    with engines(bridge=args.network == "bridge") as (benv, denv):
        berth = [str(BIN / "berth")]
        subprocess.run(
            [*berth, "run", "-d", "--name", "ex", "--network", "none", "benchbox", "sleep", "600"],
            env=benv,
            check=True,
            capture_output=True,
        )
        if denv:
            subprocess.run(
                [
                    docker,
                    "run",
                    "-d",
                    "--name",
                    "ex",
                    "--pull",
                    "never",
                    "--network",
                    "none",
                    "benchbox",
                    "sleep",
                    "600",
                ],
                env=denv,
                check=True,
                capture_output=True,
            )
        b: list[float] = []
        d: list[float] = []
        for i in range(args.n + 3):
            tb = timed([*berth, "exec", "ex", "true"], benv)
            td = timed([docker, "exec", "ex", "true"], denv) if denv else 0.0
            if i >= 3:  # warm-up
                b.append(tb)
                d.append(td)
        print(f"exec CTR true, {args.n} runs each, alternating")
        print(f"  berth  (berth CLI -> berthd):   {summary(b)}")
        if denv:
            print(f"  docker (docker CLI -> dockerd): {summary(d)}")
            print(
                f"  ratio berth/docker (medians):   "
                f"{statistics.median(b) / statistics.median(d):.2f}"
            )
        subprocess.run([*berth, "rm", "-f", "ex"], env=benv, capture_output=True)
        if denv:
            subprocess.run([docker, "rm", "-f", "ex"], env=denv, capture_output=True)
        n = args.containers
        mb = per_container(berth, benv, "berth", n, args.network)
        print(f"engine PSS per running idle container ({n} containers, --network {args.network})")
        print(f"  berth  (berthd + fork servers + shim hosts): {mb:.2f} MiB")
        if denv:
            md = per_container([docker], denv, "docker", n, args.network)
            print(f"  docker (dockerd + containerd + shims):    {md:.2f} MiB")
            print(f"  ratio berth/docker:                       {mb / md:.2f}")


if __name__ == "__main__":
    main()
