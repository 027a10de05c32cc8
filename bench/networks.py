#!/usr/bin/env python3
"""Issue 7's network figures, berth against Docker where a dockerd is installed:

- 50 containers on one user-defined network, each resolving every other by name: how many of
  the 2,450 look-ups succeed, and how long the whole takes;
- the throughput of a published port: a 256 MiB bulk transfer from a container's web server to
  the host through 127.0.0.1, best of three, in MiB/s.

    .venv/bin/python bench/networks.py [--containers 50] [--mib 256]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
import urllib.request

from _engines import BIN, engines


def resolve_all(cli: list[str], env: dict[str, str], n: int, extra: list[str]) -> tuple[int, float]:
    subprocess.run(
        [*cli, "network", "create", "benchnet"], env=env, check=True, capture_output=True
    )
    names = [f"peer{i}" for i in range(n)]
    try:
        for name in names:
            subprocess.run(
                [
                    *cli,
                    "run",
                    "-d",
                    *extra,
                    "--name",
                    name,
                    "--network",
                    "benchnet",
                    "benchbox",
                    "sleep",
                    "600",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        # a name that does not resolve makes wget say "bad address"; any other failure (the
        # closed port 9) means the name resolved
        script = (
            "ok=0; for p in " + " ".join(names) + "; do "
            "[ $p = $(hostname) ] && continue; "
            "wget -q -T 2 -O /dev/null http://$p:9/ 2>&1 | grep -q 'bad address' "
            "|| ok=$((ok+1)); done; echo $ok"
        )
        t = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*cli, "exec", name, "sh", "-c", script.replace("$(hostname)", name)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in names
        ]
        ok = sum(int((p.communicate()[0] or "0").strip() or 0) for p in procs)
        return ok, time.perf_counter() - t
    finally:
        subprocess.run([*cli, "rm", "-f", *names], env=env, capture_output=True)
        subprocess.run([*cli, "network", "rm", "benchnet"], env=env, capture_output=True)


def throughput(cli: list[str], env: dict[str, str], mib: int, extra: list[str]) -> float:
    script = (
        f"mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={mib} 2>/dev/null "
        "&& exec httpd -f -p 80 -h /www"
    )
    cid = subprocess.run(
        [*cli, "run", "-d", *extra, "-p", "127.0.0.1::80", "benchbox", "sh", "-c", script],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        port = (
            subprocess.run(
                [*cli, "port", cid, "80"], env=env, check=True, capture_output=True, text=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        best = 0.0
        for _ in range(20):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        for _ in range(3):
            t = time.perf_counter()
            got = 0
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/big", timeout=60) as r:
                while chunk := r.read(1 << 20):
                    got += len(chunk)
            best = max(best, got / (time.perf_counter() - t) / (1 << 20))
        return best
    finally:
        subprocess.run([*cli, "rm", "-f", cid], env=env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    docker = shutil.which("docker") or "docker"
    with engines(bridge=True) as (benv, denv):
        berth = [str(BIN / "berth")]
        n = args.containers
        ok, secs = resolve_all(berth, benv, n, [])
        print(f"{n} containers on one network, each resolving all the others by name")
        print(f"  berth:  {ok}/{n * (n - 1)} succeeded in {secs:.1f} s")
        if denv:
            ok, secs = resolve_all([docker], denv, n, ["--pull", "never"])
            print(f"  docker: {ok}/{n * (n - 1)} succeeded in {secs:.1f} s")
        mb = throughput(berth, benv, args.mib, [])
        print(f"published port, {args.mib} MiB from the container through 127.0.0.1")
        print(f"  berth:  {mb:.0f} MiB/s")
        if denv:
            md = throughput([docker], denv, args.mib, ["--pull", "never"])
            print(f"  docker: {md:.0f} MiB/s")
            print(f"  ratio berth/docker: {mb / md:.2f} (target at least 0.8)")


if __name__ == "__main__":
    main()
