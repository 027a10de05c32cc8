"""The CRI's protobuf messages, compiled from `proto/api.proto` with grpcio-tools on first use.

The generated `api_pb2` module is not committed: it is written once into a cache directory
(keyed by the proto's digest and protoc's version) and loaded from there. Only the messages are
generated; the two services are served from the proto's own descriptors (`berth.cri.server`),
so no generated gRPC stub is needed either. The messages are untyped to mypy (`Any`): this
module is the thin seam between the generated code and typed berth.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from types import ModuleType
from typing import Any

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proto")
PROTO = os.path.join(PROTO_DIR, "api.proto")
MODULE = "berth.cri._api_pb2"


def cache_dir() -> str:
    """$BERTH_CRI_CACHE, else $XDG_CACHE_HOME/berth or ~/.cache/berth."""
    given = os.environ.get("BERTH_CRI_CACHE")
    if given:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "berth")


def _protoc_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def generate(out_dir: str) -> str:
    """Compile the proto into `out_dir` (atomically: a half-written module is never seen);
    the path of the module."""
    with open(PROTO, "rb") as f:
        key = hashlib.sha256(f.read() + _protoc_version().encode()).hexdigest()[:16]
    target = os.path.join(out_dir, f"cri_api_pb2_{key}.py")
    if os.path.exists(target):
        _check_owned(target)
        return target
    from grpc_tools import protoc  # only when it is to be compiled: it is slow to import

    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={tmp}", PROTO])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {PROTO}")
        os.replace(os.path.join(tmp, "api_pb2.py"), target)
    return target


def _check_owned(path: str) -> None:
    """The module is imported as code: it must be ours and writable by us alone."""
    st = os.stat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(
            f"{path}: not owned by this user or writable by others: "
            "remove it, or set BERTH_CRI_CACHE to a private directory"
        )


@functools.cache
def api() -> Any:
    """The generated module of runtime.v1's messages (compiled on the first call)."""
    path = generate(cache_dir())
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    mod: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = mod
    spec.loader.exec_module(mod)
    return mod


__all__ = ["api", "cache_dir", "generate"]
