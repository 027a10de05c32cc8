"""berth compose: compose files (find, interpolate, merge, validate) into a typed `Project`, and
the orchestrator that drives a daemon through the Engine API only (so it works against dockerd
too).

Imports `client`, `errors`, `units`, `jsonc`. YAML and JSON schema are imported here only, never
on the CLI's fast paths. The names below are loaded when first used, so that importing a light
module of the package (`compose.upcache`, the fast path of an unchanged `up -d`) does not load
YAML and the model with it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

    from berth.compose.loader import Loaded, LoadOptions
    from berth.compose.model import Project, Service
    from berth.compose.yamlsrc import ComposeFileError

_LAZY = {
    "LoadOptions": "loader",
    "Loaded": "loader",
    "Project": "model",
    "Service": "model",
    "ComposeFileError": "yamlsrc",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"berth.compose.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'berth.compose' has no attribute {name!r}")


def load_project(opts: LoadOptions) -> tuple[Project, list[str]]:
    """The project `opts` names, and the warnings its loading produced."""
    from berth.compose.loader import load
    from berth.compose.normalize import project as normalize_project
    from berth.compose.normalize import unsupported
    from berth.compose.project import build_project

    loaded = load(opts)
    canonical = normalize_project(
        loaded.name, loaded.data, loaded.working_dir, loaded.env, opts.inputs
    )
    return (
        build_project(canonical, loaded.working_dir, loaded.config_files, loaded.env),
        loaded.warnings + unsupported(canonical["services"]),
    )


def load_canonical(opts: LoadOptions) -> tuple[dict[str, Any], Loaded]:
    """The canonical tree `config` prints (no typed model: with `interpolate=False` its
    values may still hold `${VAR}`), and the load it came from."""
    from berth.compose.loader import load
    from berth.compose.normalize import project as normalize_project
    from berth.compose.normalize import unsupported

    loaded = load(opts)
    canonical = normalize_project(loaded.name, loaded.data, loaded.working_dir, loaded.env)
    loaded.warnings += unsupported(canonical["services"])
    return canonical, loaded


__all__ = [
    "LoadOptions",
    "Loaded",
    "Project",
    "Service",
    "ComposeFileError",
    "load_canonical",
    "load_project",
]
