#!/usr/bin/env python3
"""Issue 4's figures: the runtime's share of `run --rm IMAGE true`, for berth's runtime, runc
and crun (where installed), alternating, in one run, measured two ways:

1. in the engine: two private berthd, the same but for `--default-runtime berth|runc`, each
   timing `berth run --rm --network none busybox true`. All else being equal, the difference
   is the runtimes' shares (the monitor drives runc with create/start/delete; berth's runtime
   runs inside the warm fork server);
2. on the command line: `RUNTIME --root R run -b BUNDLE ID` (create, start, wait, delete) on
   one bundle (runc's default config.json over a busybox rootfs), --cli-runs times each (these
   take ~20 ms, and this machine's noise is a few ms: more runs, a steadier median).

    .venv/bin/python bench/runtime.py [-n 20] [--cli-runs 100]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _engines import berthd, remove_cgroups_named

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="runs in the engine, each")
    ap.add_argument("--cli-runs", type=int, default=100, help="command-line runs, each")
    a = ap.parse_args()
    runtimes = {"berth-runtime": str(BIN / "berth-runtime")}
    for name in ("runc", "crun"):
        if shutil.which(name):
            runtimes[name] = shutil.which(name) or name
    if "runc" not in runtimes:
        raise SystemExit("needs runc for its default config.json (apt-get install runc)")
    cg = f"berth-rtbench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="berth-bench-rt-") as t:
        tmp = Path(t)
        rootfs_tar = tmp / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs_tar)], check=True)
        bundle = tmp / "bundle"
        (bundle / "rootfs").mkdir(parents=True)
        with tarfile.open(rootfs_tar) as tf:
            tf.extractall(bundle / "rootfs", filter="fully_trusted")
        subprocess.run(["runc", "spec"], cwd=bundle, check=True)
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["true"]
        cfg["linux"]["cgroupsPath"] = f"{cg}/c"
        (bundle / "config.json").write_text(json.dumps(cfg))
        times: dict[str, list[float]] = {k: [] for k in runtimes}
        skipped: dict[str, str] = {}
        try:
            for i in range(a.cli_runs):
                order = list(runtimes.items())
                if i % 2:
                    order.reverse()
                for name, exe in order:
                    if name in skipped:
                        continue
                    t0 = time.perf_counter()
                    r = subprocess.run(
                        [
                            exe,
                            "--root",
                            str(tmp / f"root-{name}"),
                            "run",
                            "-b",
                            str(bundle),
                            f"c{i}",
                        ],
                        capture_output=True,
                    )
                    times[name].append(time.perf_counter() - t0)
                    if r.returncode != 0:
                        if name == "crun":  # e.g. "cgroups in hybrid mode not supported"
                            skipped[name] = r.stderr.decode().strip()
                            del times[name]
                            continue
                        raise SystemExit(f"{name} failed: {r.stderr.decode()}")
        finally:
            remove_cgroups_named(cg)
        engine = _in_engine(tmp, rootfs_tar, a.n)
        runc = statistics.median(times["runc"])
        print(f"1. `berth run --rm --network none busybox true`, {a.n} runs each, alternating")
        for name, xs in engine.items():
            print(
                f"berthd with {name}: median {statistics.median(xs) * 1000:.1f} ms "
                f"(min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"
            )
        if "runc" in engine:
            d = statistics.median(engine["runc"]) - statistics.median(engine["berth"])
            print(
                f"berth's runtime takes {d * 1000:.1f} ms less of it than runc "
                f"(target: at most runc's)"
            )
        print(f"2. `RUNTIME run` of `true` on one bundle, {a.cli_runs} runs each, alternating")
        for name, why in skipped.items():
            print(f"{name}: cannot run on this machine: {why}")
        for name, xs in times.items():
            med = statistics.median(xs)
            print(
                f"{name}: median {med * 1000:.1f} ms (min {min(xs) * 1000:.1f}, "
                f"max {max(xs) * 1000:.1f}); ratio to runc {med / runc:.2f}"
                + (" (target: at most 1)" if name == "berth-runtime" else "")
            )


def _in_engine(tmp: Path, rootfs_tar: Path, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    names = ["berth"] + (["runc"] if shutil.which("runc") else [])
    (tmp / "e-berth").mkdir()
    (tmp / "e-runc").mkdir()
    with (
        berthd(
            tmp / "e-berth", rootfs_tar, ("--default-runtime", "berth"), "rtb", "10.197.1.1/24"
        ) as eb,
        berthd(
            tmp / "e-runc",
            rootfs_tar,
            (
                "--default-runtime",
                names[-1],
                *(
                    # a real runc is berthd's only where configured
                    ["--add-runtime", "runc=runc"] if names[-1] == "runc" else []
                ),
            ),
            "rtr",
            "10.197.2.1/24",
        ) as er,
    ):
        envs = {"berth": eb, "runc": er}
        cli = str(BIN / "berth")
        for name in names:  # warm up
            subprocess.run(
                [cli, "run", "--rm", "--network", "none", "benchbox", "true"],
                env=envs[name],
                check=True,
                capture_output=True,
            )
        for i in range(n):
            for name in names if i % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                subprocess.run(
                    [cli, "run", "--rm", "--network", "none", "benchbox", "true"],
                    env=envs[name],
                    check=True,
                    capture_output=True,
                )
                out.setdefault(name, []).append(time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    main()
