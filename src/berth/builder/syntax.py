"""The Dockerfile's syntax: its instructions (by BuildKit's own parser, the `dockerfile`
package) and its stages.

Imports `errors`. Words are expanded later, step by step (builder.shell.Lexer), since their
values depend on the ARGs and ENVs before them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from berth.errors import InvalidArgument

EXPANDED = {
    "ADD",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "ARG",
}
KNOWN = EXPANDED | {"RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER"}
# BuildKit's RUN --network modes; anything else (container:ID, a named network) is refused
RUN_NETWORKS = ("default", "none", "host")


@dataclass(slots=True)
class Instruction:
    cmd: str
    flags: dict[str, str]
    args: list[str]
    json: bool
    original: str
    line: int
    heredocs: list[tuple[str, str]]  # (name, content)


@dataclass(slots=True)
class Stage:
    index: int
    name: str
    base: str
    platform: str
    line: int
    steps: list[Instruction] = field(default_factory=list)


def parse(text: str, filename: str = "Dockerfile") -> tuple[list[Instruction], str]:
    """Instructions and the escape character; errors name the file and line."""
    import dockerfile

    escape = "\\"
    for line in text.splitlines():
        m = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
            if escape not in ("\\", "`"):
                raise InvalidArgument(
                    f"{filename}:1: invalid escape token '{escape}': does not "
                    "validate as one of [\\ `]"
                )
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        raise InvalidArgument(f"{filename}: dockerfile parse error: {e}") from None
    out = []
    for c in cmds:
        name = c.cmd.upper()
        if name not in KNOWN and name != "FROM":
            raise InvalidArgument(
                f"{filename}:{c.start_line}: dockerfile parse error on line "
                f"{c.start_line}: unknown instruction: {c.cmd}"
            )
        flags: dict[str, str] = {}
        for f in c.flags:
            k, eq, v = f.lstrip("-").partition("=")
            if k == "network" and name == "RUN" and (not eq or v not in RUN_NETWORKS):
                # as BuildKit's parser: container:ID or a named network is no RUN option
                raise InvalidArgument(
                    f"{filename}:{c.start_line}: invalid network mode {json.dumps(v if eq else '')}"
                    f": RUN --network takes {', '.join(RUN_NETWORKS)}"
                )
            if k == "mount":
                flags.setdefault("mount", "")
                flags["mount"] += ("\n" if flags["mount"] else "") + v
            else:
                flags[k] = v if eq else "true"
        args = list(c.value)
        if name == "ONBUILD":
            args = [c.original.split(None, 1)[1] if len(c.original.split(None, 1)) > 1 else ""]
        out.append(
            Instruction(
                name,
                flags,
                args,
                c.json,
                c.original,
                c.start_line,
                [(h.name, h.content) for h in c.heredocs],
            )
        )
    if not out:
        raise InvalidArgument(f"{filename}: the Dockerfile cannot be empty")
    return out, escape


def stages_of(
    instructions: list[Instruction], filename: str
) -> tuple[list[Instruction], list[Stage]]:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            a = ins.args
            if not a or not a[0]:
                raise InvalidArgument(f"{filename}:{ins.line}: FROM requires an image name")
            name = ""
            if len(a) == 3 and a[1].upper() == "AS":
                name = a[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
                    raise InvalidArgument(
                        f"{filename}:{ins.line}: invalid name for build stage: "
                        f'"{a[2]}", name can\'t start with a number or '
                        "contain symbols"
                    )
            elif len(a) != 1:
                raise InvalidArgument(
                    f"{filename}:{ins.line}: FROM requires either one or three arguments"
                )
            stages.append(Stage(len(stages), name, a[0], ins.flags.get("platform", ""), ins.line))
        elif not stages:
            if ins.cmd != "ARG":
                raise InvalidArgument(
                    f"{filename}:{ins.line}: no build stage in current context "
                    f"({ins.cmd} before FROM)"
                )
            meta.append(ins)
        else:
            stages[-1].steps.append(ins)
    if not stages:
        raise InvalidArgument(f"{filename}: no build stage in current context")
    return meta, stages


def kv(spec: str) -> dict[str, str]:
    out = {}
    for part in spec.split(","):
        k, eq, v = part.strip().partition("=")
        if k:
            out[k.lower()] = v if eq else ""
    return out


def show(ins: Instruction) -> str:
    return ins.original.split("\n", 1)[0] if ins.heredocs else ins.original


__all__ = ["Instruction", "Stage", "parse", "stages_of", "kv", "show", "RUN_NETWORKS"]
