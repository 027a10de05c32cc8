#!/usr/bin/env python3
"""Issue 5's figures: push and pull of a 3-layer image of about 300 MB through a registry on
loopback (Debian's docker-registry), berth against Docker, alternating, in one run.

- push: each engine pushes the image (loaded into both from the same docker-archive) to an
  empty registry, so every layer is compressed and uploaded;
- pull: each engine pulls the same image (as berth pushed it) with none of its layers present.

    .venv/bin/python bench/registry.py [-n 3] [--mb 300]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _engines import BIN, engines, print_ratios, timed


def make_archive(path: Path, mb: int) -> None:
    """A docker-archive of 3 layers, each of files that are half random, half text."""
    rng_words = [os.urandom(4).hex() for _ in range(2000)]
    diff_ids, names = [], []
    with tarfile.open(path, "w") as out:
        for n in range(3):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as lt:
                per = (mb // 3) << 20
                i = 0
                while per > 0:
                    size = min(per, 2 << 20)
                    data = os.urandom(size // 2)
                    text = " ".join(rng_words[(i * 7 + k) % 2000] for k in range(size // 18))
                    data += text.encode()[: size - len(data)]
                    ti = tarfile.TarInfo(f"layer{n}/file{i:04d}")
                    ti.size = len(data)
                    lt.addfile(ti, io.BytesIO(data))
                    per -= size
                    i += 1
            raw = buf.getvalue()
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            name = f"{n}/layer.tar"
            names.append(name)
            ti = tarfile.TarInfo(name)
            ti.size = len(raw)
            out.addfile(ti, io.BytesIO(raw))
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        cname = hashlib.sha256(config).hexdigest() + ".json"
        for name, data in (
            (cname, config),
            (
                "manifest.json",
                json.dumps(
                    [{"Config": cname, "RepoTags": ["bench/big:1"], "Layers": names}]
                ).encode(),
            ),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))


@contextlib.contextmanager
def registry(base: Path) -> Iterator[str]:
    if not shutil.which("docker-registry"):
        raise SystemExit("needs Debian's docker-registry package")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.yml").write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(base / "data")}},
                "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"},
            }
        )
    )
    p = subprocess.Popen(
        ["docker-registry", "serve", str(base / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def run(cmd: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (each engine, alternating)")
    ap.add_argument("--mb", type=int, default=300, help="image size")
    a = ap.parse_args()
    berth = [str(BIN / "berth")]
    docker = [shutil.which("docker") or "docker"]
    with engines() as (benv, denv), tempfile.TemporaryDirectory(prefix="berth-bench-reg-") as t:
        tmp = Path(t)
        archive = tmp / "big.tar"
        make_archive(archive, a.mb)
        kinds = [("berth", berth, benv)] + ([("docker", docker, denv)] if denv else [])
        for _, cli, env in kinds:
            run([*cli, "load", "-i", str(archive)], env)
        times: dict[tuple[str, str], list[float]] = {}
        for i in range(a.n):
            # push: an empty registry each time, so that nothing is skipped or mounted
            for kind, cli, env in kinds if i % 2 == 0 else kinds[::-1]:
                with registry(tmp / f"reg-push-{kind}-{i}") as addr:
                    ref = f"{addr}/bench/big:1"
                    run([*cli, "tag", "bench/big:1", ref], env)
                    times.setdefault((kind, "push"), []).append(timed([*cli, "push", ref], env))
                    run([*cli, "rmi", ref], env)
        with registry(tmp / "reg-pull") as addr:
            ref = f"{addr}/bench/big:1"
            run([*berth, "tag", "bench/big:1", ref], benv)
            run([*berth, "push", ref], benv)
            run([*berth, "rmi", ref], benv)
            for _, cli, env in kinds:
                run([*cli, "rmi", "bench/big:1"], env)
            for i in range(a.n):
                for kind, cli, env in kinds if i % 2 == 0 else kinds[::-1]:
                    times.setdefault((kind, "pull"), []).append(timed([*cli, "pull", ref], env))
                    run([*cli, "rmi", ref], env)
                    if kind == "docker":
                        run([*cli, "image", "prune", "-af"], env)
        print(f"image: 3 layers, {a.mb} MB; {a.n} rounds, alternating")
        print_ratios(times, [("push", 1), ("pull", 1)])


if __name__ == "__main__":
    main()
