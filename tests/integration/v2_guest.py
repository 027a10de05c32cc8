"""Run inside the cgroup-v2 guest (tests/vm.py) by test_runtime_v2_vm.py: each case's bundle
under runc and under berth-runtime, what each step returned, what the container's cgroup held
and what the container printed, written as JSON for the host to compare.

    python v2_guest.py CASES.json ROOTFS_DIR RESULTS.json

Standard library only: it runs with the venv's python, but knows nothing of the tests package.
A case is {"name", "config", "files": [cgroup files to read], "steps": [...]}, steps being
"create", "read", "start", "wait", "pause", "resume", "kill", "delete" (default: create, read,
start, wait, delete); "read" records the files under the step's name (read, read@pause, ...).
"exec" is the shell command of an exec step. "before", a shell command, runs first; cases
with one, or with "alone", run alone, last (the others run two at a time).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RT = {"runc": "runc", "berth": str(Path(sys.executable).parent / "berth-runtime")}
DEFAULT_STEPS = ["create", "read", "start", "wait", "delete"]
PR_SET_CHILD_SUBREAPER = 36


def _reap(pid: int = -1) -> None:
    """Reap `pid` (an init re-parented here), or every child: only once no case runs, since
    it would take the exit status of a runtime's command from its subprocess.run."""
    try:
        while os.waitpid(pid, os.WNOHANG)[0] > 0 and pid == -1:
            pass
    except ChildProcessError:
        pass


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _cgroup_dir(pid: int) -> Path | None:
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return Path("/sys/fs/cgroup" + line[3:])
    except OSError:
        pass
    return None


def _read(d: Path | None, files: list[str]) -> dict[str, str]:
    out = {}
    for f in files:
        try:
            out[f] = (d / f).read_text().strip() if d else "no cgroup"
        except OSError as e:
            out[f] = f"unreadable: {e.strerror}"
    return out


def _nullb0() -> tuple[int, int]:
    major, minor = Path("/sys/block/nullb0/dev").read_text().split(":")
    return int(major), int(minor)


def _for(config: dict[str, Any], rt: str, rootfs: Path) -> dict[str, Any]:
    """The case's config for one runtime: its own cgroup (RT in the path is the runtime's
    name), the shared rootfs, and the null_blk disk's numbers where a device says "nullb0"."""
    cfg = json.loads(json.dumps(config))
    cfg["root"]["path"] = str(rootfs)
    if "cgroupsPath" in cfg["linux"]:
        cfg["linux"]["cgroupsPath"] = cfg["linux"]["cgroupsPath"].replace("RT", rt)
    for devices in ((cfg["linux"].get("resources") or {}).get("blockIO") or {}).values():
        for d in devices if isinstance(devices, list) else ():
            if d.get("major") == "nullb0":
                d["major"], d["minor"] = _nullb0()
    return cfg


def run_case(case: dict[str, Any], rt: str, base: Path, rootfs: Path) -> dict[str, Any]:
    bundle = base / case["name"] / rt
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(_for(case["config"], rt, rootfs)))
    root = bundle / "state"
    out_file = bundle / "out"
    res: dict[str, Any] = {"steps": {}}
    pid = 0
    cg: Path | None = None

    def cmd(*args: str) -> subprocess.CompletedProcess[bytes]:
        # files, not pipes: a created container's init holds what `create` was given
        err_file = bundle / "err"
        argv = [RT[rt], "--root", str(root), *args]
        if case.get("caller_cgroup"):  # the runtime run from that cgroup (made here)
            caller = Path("/sys/fs/cgroup", case["caller_cgroup"])
            caller.mkdir(parents=True, exist_ok=True)
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(caller), *argv]
        with open(out_file, "a") as out, open(err_file, "w+") as err:
            r = subprocess.run(
                argv, cwd=bundle, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120
            )
            err.seek(0)
            res["steps"][args[0]] = {"rc": r.returncode, "stderr": err.read().strip()}
        return r

    for step in case.get("steps") or DEFAULT_STEPS:
        kind, _, tag = step.partition("@")
        if kind == "create":
            # the init's pid from --pid-file: a `state` would be one more (emulated) start-up
            if (
                cmd("create", "--pid-file", str(bundle / "pid"), "-b", str(bundle), "c").returncode
                != 0
            ):
                break
            pid = int((bundle / "pid").read_text())
            cg = _cgroup_dir(pid)
            res["cgroup_path"] = str(cg)
        elif kind == "read":
            res[step] = _read(cg, case.get("files") or [])
        elif kind == "wait":
            deadline = time.monotonic() + 60
            while not _gone(pid) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.05)
        elif kind == "sleep":
            time.sleep(float(tag))
        elif kind == "exec":
            cmd("exec", "c", "sh", "-c", case["exec"])
        elif kind == "kill":
            cmd("kill", "c", "KILL")
        elif kind == "delete":
            cmd("delete", "-f", "c")
        else:
            cmd(kind, "c")
    if res["steps"].get("create", {}).get("rc") == 0 and "delete" not in res["steps"]:
        cmd("delete", "-f", "c")
    if pid:
        _reap(pid)
    res["output"] = out_file.read_text() if out_file.exists() else ""
    res["cgroup_left"] = bool(cg and cg.exists())
    return res


def main(argv: list[str]) -> int:
    cases = json.loads(Path(argv[0]).read_text())
    rootfs = Path(argv[1])
    base = Path("/tmp/bundles")
    # the containers' inits, once their runtime's create has exited, are reparented here
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    results: dict[str, Any] = {}

    def one(case: dict[str, Any]) -> None:
        results[case["name"]] = {}
        if case.get("before"):
            subprocess.run(["sh", "-c", case["before"]], check=True, timeout=60)
        for rt in ("runc", "berth"):
            t = time.monotonic()
            try:
                results[case["name"]][rt] = run_case(case, rt, base, rootfs)
            except Exception as e:  # noqa: BLE001 - reported to the host's test
                results[case["name"]][rt] = {"error": repr(e)}
            print(f"{case['name']} {rt}: {time.monotonic() - t:.1f}s", flush=True)

    # two at a time (the guest has two CPUs, and most of a case is waiting on emulated
    # start-ups); a case that changes the machine ("before") runs alone, after the others
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, [c for c in cases if not (c.get("before") or c.get("alone"))]))
    for case in cases:
        if case.get("before") or case.get("alone"):
            one(case)
    _reap()
    Path(argv[2]).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
