"""The Dockerfile builder behind `/build` (the classic builder's API), `commit` and `diff`.

Imports `images`, `containers`, `reference`, `errors`, `fs`, `units`. The Dockerfile is parsed
by BuildKit's own parser (the `dockerfile` package; syntax.py); words are expanded by a lexer
that follows BuildKit's (shell.py). Each step makes an image, as the classic builder does
(build.py); RUN steps run in a container through the `ContainerRunner` protocol (runner.py,
run.py) and their changes become a layer; COPY, ADD and WORKDIR write their layer directly
from the context (context.py, files.py); the other instructions change only the config
(instructions.py). A step reuses the image of an earlier build with the same parent and the
same instruction, build args and (for COPY and ADD) the same content and metadata of the files
it copies, whatever their mtime; a step that misses the cache says why (cache.py). `commit`
and `diff` read a container's layer the same way (commit.py).
"""

from __future__ import annotations

from berth.builder.build import Builder
from berth.builder.context import extract_context
from berth.builder.runner import ContainerRunner
from berth.builder.state import (
    ENTITLEMENTS,
    NETWORK_HOST,
    BuildError,
    Options,
    State,
    check_entitlements,
)
from berth.builder.syntax import Instruction, Stage, parse, stages_of

__all__ = [
    "Builder",
    "Options",
    "BuildError",
    "ContainerRunner",
    "parse",
    "stages_of",
    "Instruction",
    "Stage",
    "State",
    "extract_context",
    "check_entitlements",
    "ENTITLEMENTS",
    "NETWORK_HOST",
]
