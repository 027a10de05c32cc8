#!/usr/bin/env python3
"""Time the CLI's start-up: `berth --version` (no daemon) and `berth ps -a` (against a private
berthd with a few containers), each over N runs, and what `-X importtime` says the imports
cost. A benchmark, not a test: run it by hand as root.

    .venv/bin/python bench/cli_startup.py [-n 20] [--baseline OTHER/src]

With `--baseline`, the same commands run from another checkout's `src` too (for instance
`git archive main src | tar -x -C /tmp/base`), alternating with this one's, so a busy machine
slows both alike; the medians and their ratio (this / baseline) are printed.

Both run from compiled bytecode, as an installed berth does: the checkouts are compiled
first, and PYTHONDONTWRITEBYTECODE is cleared (without it every run would time the compiler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _engines import BIN, ROOT, berthd, timed

# what bin/berth does, with the checkout's src first on the path
LAUNCHER = (
    "import sys\nsys.path.insert(0, {src!r})\nfrom berth.cli.main import main\nsys.exit(main())\n"
)


def import_ms(launcher: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(all imports, berth's own) in ms, the sum of `-X importtime`'s self times (µs)."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", str(launcher), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    total = own = 0
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cum, name = (x.strip() for x in line[len("import time:") :].split("|"))
        total += int(self_us)
        if name.strip().startswith("berth"):
            own += int(self_us)
    return total / 1000, own / 1000


def _bytecode_env(env: dict[str, str]) -> dict[str, str]:
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="runs per command and checkout")
    ap.add_argument("--baseline", type=Path, help="another checkout's src to compare with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-clistart-") as tmp:
        base = Path(tmp)
        launchers = {"this": base / "this.py"}
        launchers["this"].write_text(LAUNCHER.format(src=str(ROOT / "src")))
        if args.baseline:
            launchers["baseline"] = base / "baseline.py"
            launchers["baseline"].write_text(LAUNCHER.format(src=str(args.baseline.resolve())))
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        srcs = [ROOT / "src"] + ([args.baseline] if args.baseline else [])
        for src in srcs:
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(src)],
                check=True,
                env=_bytecode_env(dict(os.environ)),
                stdout=subprocess.DEVNULL,
            )
        with berthd(base / "b", rootfs, name="clistart", bip="10.197.0.1/24") as env:
            env = _bytecode_env(env)
            for i in range(3):
                subprocess.run(
                    [str(BIN / "berth"), "create", "--name", f"c{i}", "benchbox", "true"],
                    env=env,
                    check=True,
                    capture_output=True,
                )
            commands = {"--version": ["--version"], "ps": ["ps", "-a"]}
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(3):  # warm-up
                for launcher in launchers.values():
                    for argv in commands.values():
                        timed([sys.executable, str(launcher), *argv], env)
            for _ in range(args.n):
                for which, launcher in launchers.items():
                    for what, argv in commands.items():
                        times.setdefault((which, what), []).append(
                            timed([sys.executable, str(launcher), *argv], env)
                        )
            for what, argv in commands.items():
                line = f"berth {what}:"
                for which, launcher in launchers.items():
                    xs = times[(which, what)]
                    imp = [import_ms(launcher, argv, env) for _ in range(args.n)]
                    # the least of N: what the imports cost when nothing else ran
                    line += (
                        f" {which} median {statistics.median(xs) * 1000:.1f} ms "
                        f"(min {min(xs) * 1000:.1f}), imports min "
                        f"{min(i[0] for i in imp):.2f} ms "
                        f"(berth's {min(i[1] for i in imp):.2f});"
                    )
                if args.baseline:
                    ratio = statistics.median(times[("this", what)]) / statistics.median(
                        times[("baseline", what)]
                    )
                    line += f" ratio {ratio:.2f}"
                print(line)


if __name__ == "__main__":
    main()
