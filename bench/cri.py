#!/usr/bin/env python3
"""Pod start latency through the CRI: RunPodSandbox + CreateContainer + StartContainer, for
berthd (--cri-socket) and for containerd's CRI plugin (Debian's containerd, a private one),
alternating, with the same busybox image and the same CNI plug-ins (a bridge of each's own, no
masquerading). Prints the medians and the ratio berth / containerd (issue 18's target: <= 0.5).
A benchmark, not a test: run it by hand as root.

    .venv/bin/python bench/cri.py [-n 20]

containerd cannot pull its pause image offline: the sandbox image is busybox running
`sleep infinity`, made by berth and imported with `ctr -n k8s.io images import`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _engines import BIN, ROOT, berthd, remove_cgroups_named, summary, wait_for

sys.path.insert(0, str(ROOT / "src"))
from berth.cri.client import CriClient  # noqa: E402

CNI_BIN = "/usr/lib/cni"
BERTH_NET = ("bcrib67", "10.251.67.128/26")
CTD_NET = ("bcric67", "10.251.67.192/26")


def conflist(base: Path, bridge: str, subnet: str) -> Path:
    d = base / "net.d"
    d.mkdir(parents=True)
    (d / "10-bench.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"bench-{bridge}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": subnet}]],
                            "dataDir": str(base / "ipam"),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    {"type": "loopback"},
                ],
            }
        )
    )
    return d


def containerd_config(base: Path, conf_dir: Path) -> Path:
    cfg = base / "config.toml"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    cfg.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
[{cri}]
  sandbox_image = "docker.io/library/benchpause:latest"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # this machine refuses a lower oom_score_adj (runc fails on the sandbox's -998): keep
  # containerd's own, as it does for rootless set-ups
  restrict_oom_score_adj = true
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{conf_dir}"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
""")
    return cfg


def _pids_with(needle: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{d}/cmdline", "rb") as f:
                if needle.encode() in f.read():
                    out.append(int(d))
    return out


@contextlib.contextmanager
def containerd(base: Path, images: list[Path]) -> Iterator[str]:
    """A private containerd with the CRI plug-in; yields its CRI address."""
    exe = shutil.which("containerd")
    if exe is None:
        raise SystemExit("containerd is not installed (Debian's containerd package)")
    conf = conflist(base, *CTD_NET)
    cfg = containerd_config(base, conf)
    sock = f"{base}/containerd.sock"
    log = open(base / "containerd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen(
        [exe, "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for(["ctr", "--address", sock, "version"], dict(os.environ), "containerd", 30)
        for tar in images:
            subprocess.run(
                ["ctr", "--address", sock, "-n", "k8s.io", "images", "import", str(tar)],
                check=True,
                capture_output=True,
            )
        yield f"unix://{sock}"
    finally:
        with contextlib.suppress(Exception), CriClient(f"unix://{sock}", timeout=30) as c:
            remove_pods(c)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
        # its shims outlive it (they hold the containers): theirs name its socket
        for pid in _pids_with(sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        subprocess.run(["umount", "-R", str(base / "state")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)
        subprocess.run(["ip", "link", "del", CTD_NET[0]], capture_output=True)
        remove_cgroups_named("k8s.io")
        with contextlib.suppress(OSError):  # runc's state root for the namespace, if empty
            os.rmdir("/run/containerd/runc/k8s.io")


def remove_pods(c: CriClient) -> None:
    for p in c.runtime("ListPodSandbox").items:
        c.runtime("StopPodSandbox", pod_sandbox_id=p.id)
        c.runtime("RemovePodSandbox", pod_sandbox_id=p.id)


def pod_start(
    c: CriClient, i: int, image: str, log_dir: Path
) -> Callable[[], tuple[float, float, float]]:
    """Time one pod start's three calls; returns a function that removes the pod (not timed)
    and gives the times."""
    pod: dict[str, Any] = {
        "metadata": {"name": f"bench{i}", "uid": f"uid{i}", "namespace": "bench"},
        "hostname": f"bench{i}",
        "log_directory": str(log_dir / str(i)),
    }
    t0 = time.perf_counter()
    sid = c.runtime("RunPodSandbox", config=pod).pod_sandbox_id
    t1 = time.perf_counter()
    cid = c.runtime(
        "CreateContainer",
        pod_sandbox_id=sid,
        sandbox_config=pod,
        config={
            "metadata": {"name": "c"},
            "image": {"image": image},
            "command": ["sleep", "1000"],
            "log_path": "c.log",
        },
    ).container_id
    t2 = time.perf_counter()
    c.runtime("StartContainer", container_id=cid)
    dt = (t1 - t0, t2 - t1, time.perf_counter() - t2)

    def remove() -> tuple[float, float, float]:
        c.runtime("StopPodSandbox", pod_sandbox_id=sid)
        c.runtime("RemovePodSandbox", pod_sandbox_id=sid)
        return dt

    return remove


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="pods per engine")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory(prefix="berth-bench-cri-") as tmp:
        base = Path(tmp)
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        (base / "c").mkdir()
        conf = conflist(base / "b", *BERTH_NET)
        extra = (
            "--cri-socket",
            f"unix://{base}/b/run/cri.sock",
            "--cni-conf-dir",
            str(conf),
            "--cni-bin-dir",
            CNI_BIN,
        )
        try:
            with berthd(base / "b", rootfs, extra, name="cri67", bip="10.251.67.1/26") as benv:
                berth = [str(BIN / "berth")]
                subprocess.run(
                    [
                        *berth,
                        "import",
                        "-c",
                        'ENTRYPOINT ["/bin/sleep", "infinity"]',
                        str(rootfs),
                        "benchpause",
                    ],
                    env=benv,
                    check=True,
                    capture_output=True,
                )
                tars = []
                for name in ("benchbox", "benchpause"):
                    tars.append(base / f"{name}.tar")
                    subprocess.run(
                        [*berth, "save", "-o", str(tars[-1]), name], env=benv, check=True
                    )
                with (
                    containerd(base / "c", tars) as ctd_addr,
                    CriClient(f"unix://{base}/b/run/cri.sock") as bc,
                    CriClient(ctd_addr) as cc,
                ):
                    try:
                        rtt = {
                            name: version_rtt(client)
                            for name, client in (("berth", bc), ("containerd", cc))
                        }
                        times = run(bc, cc, args.n, base)
                    finally:
                        with contextlib.suppress(Exception):
                            remove_pods(bc)
        finally:
            subprocess.run(["ip", "link", "del", BERTH_NET[0]], capture_output=True)
    b, c = ([sum(x) for x in times[e]] for e in ("berth", "containerd"))
    print(
        f"pod start (RunPodSandbox + CreateContainer + StartContainer), {args.n} pods each, "
        "alternating"
    )
    for name, xs in (("berth", b), ("containerd", c)):
        steps = ", ".join(
            f"{what} {statistics.median(x[k] for x in times[name]):.3f}"
            for k, what in enumerate(("run", "create", "start"))
        )
        print(f"  {name + ':':11} {summary(xs)}; medians {steps}")
    print(
        f"  ratio berth/containerd: {statistics.median(b) / statistics.median(c):.2f} "
        "(target <= 0.5)"
    )
    print(
        "Version round trip (the gRPC server's own cost), median of 200: "
        + ", ".join(f"{name} {v * 1000:.2f} ms" for name, v in rtt.items())
    )


def version_rtt(c: CriClient, n: int = 200) -> float:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        c.runtime("Version")
        xs.append(time.perf_counter() - t)
    return statistics.median(xs)


def run(
    bc: CriClient, cc: CriClient, n: int, base: Path
) -> dict[str, list[tuple[float, float, float]]]:
    times: dict[str, list[tuple[float, float, float]]] = {"berth": [], "containerd": []}
    engines = (
        ("berth", bc, "docker.io/library/benchbox:latest"),
        ("containerd", cc, "docker.io/library/benchbox:latest"),
    )
    for i in range(-2, n):  # two warm-up pods each
        for name, client, image in engines:
            dt = pod_start(client, i + 2, image, base / name / "logs")()
            if i >= 0:
                times[name].append(dt)
    return times


if __name__ == "__main__":
    main()
