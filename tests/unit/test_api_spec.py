"""Every route of the Engine API's definition (v1.50, ../shared/specs/engine-api) is served:
swarm mode's as a daemon outside a swarm serves them, the rest by berth's handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth.api import Api

# the copy kept in the tree (with its licence) for the fuzzing campaign, so that a clone without
# ../shared still checks every route
SPEC = Path(__file__).resolve().parents[1] / "campaigns" / "specs" / "v1.50.yaml"


def _shape(path: str) -> str:
    """`/containers/{id}/json` and `/images/{name:.+}/json` alike: parameters as `{}`."""
    out, depth = [], 0
    for ch in path:
        if ch == "{":
            if depth == 0:
                out.append("{}")
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def test_every_route_of_the_definition_is_served() -> None:
    yaml = pytest.importorskip("yaml")
    if not SPEC.exists():
        pytest.skip(f"the Engine API definition is not at {SPEC}")
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    api = Api(containers=None, images=None, info=dict)  # type: ignore[arg-type]
    served = {(method, _shape(path)) for method, path, _ in api.routes()}
    wanted = {
        (method.upper(), _shape(path))
        for path, ops in spec["paths"].items()
        for method in ops
        if method.upper() in ("GET", "POST", "PUT", "DELETE", "HEAD")
    }
    assert sorted(wanted - served) == []
