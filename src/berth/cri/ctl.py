"""A few of crictl's commands, for driving a CRI socket by hand where crictl cannot be built
(see README): `python -m berth.cri.ctl [-r ENDPOINT] COMMAND ...`. Config files are crictl's
JSON (the proto's field names: `metadata`, `log_directory`, ...); answers print as JSON.

    python -m berth.cri.ctl runp pod.json
    python -m berth.cri.ctl create POD_ID container.json pod.json
    python -m berth.cri.ctl start CONTAINER_ID
    python -m berth.cri.ctl exec CONTAINER_ID ls /
    python -m berth.cri.ctl ps -a; ... stopp POD_ID; rmp POD_ID
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

from berth.cri.client import CriClient
from berth.cri.gen import api

DEFAULT_ENDPOINT = "unix:///run/berth/cri.sock"


def _load(path: str, message: str) -> Any:
    """A crictl config file as the message `message`; env values as plain strings, as crictl
    takes them (the proto's `bytes` would want base64 in JSON)."""
    from google.protobuf import json_format

    with open(path) as f:
        doc = json.load(f)
    for env in doc.get("envs") or []:
        if isinstance(env, dict) and isinstance(env.get("value"), str):
            env["value"] = base64.b64encode(env["value"].encode()).decode()
    return json_format.ParseDict(doc, getattr(api(), message)(), ignore_unknown_fields=True)


def _show(msg: Any) -> None:
    from google.protobuf import json_format

    print(
        json_format.MessageToJson(
            msg,
            preserving_proto_field_name=True,
            indent=2,
            always_print_fields_with_no_presence=True,
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m berth.cri.ctl", description=__doc__)
    p.add_argument(
        "-r",
        "--runtime-endpoint",
        default=os.environ.get("CONTAINER_RUNTIME_ENDPOINT", DEFAULT_ENDPOINT),
    )
    p.add_argument("-t", "--timeout", type=float, default=60.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("version", "info", "pods", "images"):
        sub.add_parser(name)
    sub.add_parser("ps").add_argument("-a", "--all", action="store_true")
    for name in ("inspectp", "stopp", "rmp", "start", "stop", "rm", "inspect", "stats"):
        sub.add_parser(name).add_argument("id")
    for name in ("pull", "rmi", "inspecti"):
        sub.add_parser(name).add_argument("image")
    sub.add_parser("runp").add_argument("pod_config")
    c = sub.add_parser("create")
    c.add_argument("pod_id")
    c.add_argument("container_config")
    c.add_argument("pod_config")
    e = sub.add_parser("exec")
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    with CriClient(a.runtime_endpoint, timeout=a.timeout) as cri:
        return _run(cri, a)


def _run(cri: CriClient, a: argparse.Namespace) -> int:
    rt, im = cri.runtime, cri.image
    if a.cmd == "version":
        _show(rt("Version"))
    elif a.cmd == "info":
        _show(rt("Status", verbose=True))
    elif a.cmd == "pods":
        _show(rt("ListPodSandbox"))
    elif a.cmd == "ps":
        _show(
            rt("ListContainers") if a.all else rt("ListContainers", filter={"state": {"state": 1}})
        )
    elif a.cmd == "images":
        _show(im("ListImages"))
    elif a.cmd == "inspectp":
        _show(rt("PodSandboxStatus", pod_sandbox_id=a.id, verbose=True))
    elif a.cmd == "inspect":
        _show(rt("ContainerStatus", container_id=a.id, verbose=True))
    elif a.cmd == "inspecti":
        _show(im("ImageStatus", image={"image": a.image}))
    elif a.cmd == "stats":
        _show(rt("ContainerStats", container_id=a.id))
    elif a.cmd == "runp":
        print(rt("RunPodSandbox", config=_load(a.pod_config, "PodSandboxConfig")).pod_sandbox_id)
    elif a.cmd == "create":
        print(
            rt(
                "CreateContainer",
                pod_sandbox_id=a.pod_id,
                config=_load(a.container_config, "ContainerConfig"),
                sandbox_config=_load(a.pod_config, "PodSandboxConfig"),
            ).container_id
        )
    elif a.cmd in ("start", "stop", "rm"):
        method = {"start": "StartContainer", "stop": "StopContainer", "rm": "RemoveContainer"}[
            a.cmd
        ]
        rt(method, container_id=a.id)
        print(a.id)
    elif a.cmd in ("stopp", "rmp"):
        rt("StopPodSandbox" if a.cmd == "stopp" else "RemovePodSandbox", pod_sandbox_id=a.id)
        print(a.id)
    elif a.cmd == "pull":
        print(im("PullImage", image={"image": a.image}).image_ref)
    elif a.cmd == "rmi":
        im("RemoveImage", image={"image": a.image})
    elif a.cmd == "exec":
        r = rt("ExecSync", container_id=a.id, cmd=a.command)
        sys.stdout.buffer.write(r.stdout)
        sys.stderr.buffer.write(r.stderr)
        return int(r.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
