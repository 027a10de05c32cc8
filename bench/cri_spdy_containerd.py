#!/usr/bin/env python3
"""The SPDY test client (tests/cri_spdy_client, on spdystream) against containerd's CRI
streaming server, the same checks as tests/integration/test_cri_spdy.py makes of berth's: proof
that the client, not only berth, has the protocol right. Not a benchmark and not a test (it
starts a private containerd, as bench/cri.py does): run it by hand as root.

    .venv/bin/python bench/cri_spdy_containerd.py

berthd is started only to make the images (busybox, and the sandbox image containerd cannot
pull offline). containerd's pods are on a bridge of their own on 10.202.68.0/26.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cri
from _engines import BIN, ROOT, berthd

from berth.cri.client import CriClient

cri.CTD_NET = ("bcri202", "10.202.68.0/26")
GO_ENV = {"GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOPROXY": "off", "GOFLAGS": ""}
IMAGE = "docker.io/library/benchbox:latest"
SERVER = (
    "(while true; do echo tick; sleep 0.2; done) & "
    "(while true; do nc -l -p 8081 -e cat; done) & "
    "while true; do nc -l -p 8080 -e echo pong; done"
)

Check = tuple[str, Callable[[CriClient, str, str], str], list[str], Callable[[Any], bool]]


def exec_url(cmd: list[str], **flags: bool) -> Callable[[CriClient, str, str], str]:
    fields = {"stdin": False, "stdout": True, "stderr": True, "tty": False, **flags}
    return lambda c, sid, cid: str(c.runtime("Exec", container_id=cid, cmd=cmd, **fields).url)


def causes(got: Any) -> Any:
    return got.get("status", {}).get("details", {}).get("causes")


CHECKS: list[Check] = [
    (
        "exec v4: stdin, stdout, stderr, exit 3",
        exec_url(["sh", "-c", "read x; echo got $x; echo oops >&2; exit 3"], stdin=True),
        ["-stdin", r"hello\n", "-stdout", "-stderr"],
        lambda g: (
            g["streams"]["stdout"] == "got hello\n"
            and g["streams"]["stderr"] == "oops\n"
            and causes(g) == [{"reason": "ExitCode", "message": "3"}]
        ),
    ),
    (
        "exec v4: success",
        exec_url(["echo", "fine"]),
        ["-stdout", "-stderr"],
        lambda g: g["status"] == {"metadata": {}, "status": "Success"},
    ),
    *[
        (
            f"exec {p}: exit 7",
            exec_url(["sh", "-c", "echo out; exit 7"]),
            ["-protocols", p, "-stdout", "-stderr"],
            lambda g: g["streams"]["stdout"] == "out\n" and "7" in g["streams"]["error"],
        )
        for p in ("v3.channel.k8s.io", "v2.channel.k8s.io")
    ],
    (
        # kubelets' streaming code (containerd's too) resets v1's error stream at once: the
        # exit goes unheard (berth's tells it)
        "exec channel.k8s.io (v1): exit 7",
        exec_url(["sh", "-c", "echo out; exit 7"]),
        ["-protocols", "channel.k8s.io", "-stdout", "-stderr"],
        lambda g: g["streams"]["stdout"] == "out\n",
    ),
    (
        "exec with a tty, resized",
        exec_url(["sh", "-c", "sleep 0.5; stty size"], tty=True, stderr=False),
        ["-tty", "-stdout", "-resize", "100x37"],
        lambda g: g["streams"]["stdout"].strip() == "37 100",
    ),
    (
        "attach",
        lambda c, sid, cid: str(
            c.runtime("Attach", container_id=cid, stdout=True, stderr=True).url
        ),
        ["-method", "GET", "-stdout", "-stderr", "-until", "tick"],
        lambda g: "tick\n" in g["streams"]["stdout"],
    ),
    (
        "port-forward, two ports on one connection",
        lambda c, sid, cid: str(c.runtime("PortForward", pod_sandbox_id=sid).url),
        ["-mode", "portforward", "-port", "8080,8081", "-send", r"ping\n", "-until", "ng\n"],
        lambda g: g["streams"]["data:8080"] == "pong\n" and g["streams"]["data:8081"] == "ping\n",
    ),
    (
        "port-forward, streams paired by stream ID",
        lambda c, sid, cid: str(c.runtime("PortForward", pod_sandbox_id=sid).url),
        ["-mode", "portforward", "-port", "8080", "-no-request-id"],
        lambda g: g["streams"]["data:8080"] == "pong\n",
    ),
    (
        "port-forward to a closed port",
        lambda c, sid, cid: str(c.runtime("PortForward", pod_sandbox_id=sid).url),
        ["-mode", "portforward", "-port", "8099"],
        lambda g: "8099" in g["streams"]["error:8099"],
    ),
]


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if shutil.which("containerd") is None or shutil.which("go") is None:
        raise SystemExit("needs Debian's containerd and golang-go")
    with tempfile.TemporaryDirectory(prefix="berth-spdy-ctd-") as tmp:
        base = Path(tmp)
        client = base / "client"
        subprocess.run(
            ["go", "build", "-o", str(client), "."],
            cwd=ROOT / "tests" / "cri_spdy_client",
            env={**os.environ, **GO_ENV, "GOCACHE": str(base / "gocache")},
            check=True,
        )
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        (base / "c").mkdir()
        tars = []
        with berthd(base / "b", rootfs, name="spdy202", bip="10.202.69.1/24") as env:
            berth = str(BIN / "berth")
            pause = ["-c", 'ENTRYPOINT ["/bin/sleep", "infinity"]', str(rootfs), "benchpause"]
            subprocess.run([berth, "import", *pause], env=env, check=True, capture_output=True)
            for name in ("benchbox", "benchpause"):
                tars.append(base / f"{name}.tar")
                subprocess.run([berth, "save", "-o", str(tars[-1]), name], env=env, check=True)
        failed = 0
        with cri.containerd(base / "c", tars) as addr, CriClient(addr, timeout=60) as c:
            pod = {
                "metadata": {"name": "spdy", "uid": "spdy202", "namespace": "test"},
                "hostname": "spdy",
                "log_directory": str(base / "logs"),
            }
            sid = c.runtime("RunPodSandbox", config=pod).pod_sandbox_id
            config = {
                "metadata": {"name": "srv"},
                "image": {"image": IMAGE},
                "command": ["sh", "-c", SERVER],
                "log_path": "srv.log",
            }
            cid = c.runtime(
                "CreateContainer", pod_sandbox_id=sid, sandbox_config=pod, config=config
            ).container_id
            c.runtime("StartContainer", container_id=cid)
            for what, url, args, ok in CHECKS:
                p = subprocess.run(
                    [str(client), *args, url(c, sid, cid)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                try:
                    got = json.loads(p.stdout)
                    good = not got.get("errors") and ok(got)
                except (ValueError, KeyError, TypeError):
                    got, good = p.stdout + p.stderr, False
                failed += not good
                print(f"{'ok  ' if good else 'FAIL'} containerd: {what}")
                if not good:
                    print(f"     {got}")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
