"""The instructions that change only the image's config: ENV, LABEL, MAINTAINER, EXPOSE, USER,
VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, ONBUILD, HEALTHCHECK.

Imports `units`. Each gives what it does to a stage's state and how the step is shown (the
text its cache key and history hold), after its words are expanded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from berth.builder.shell import Lexer
from berth.builder.state import DEFAULT_SHELL, BuildError, State
from berth.builder.syntax import Instruction

Mutate = Callable[[State], None]
_Handler = Callable[[Instruction, State, dict[str, str], str, Lexer], tuple[Mutate, str]]


def config_step(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    """What `ins` does to the config, and the step as shown; BuildError where it is wrong."""
    handler = _HANDLERS.get(ins.cmd)
    if handler is None:
        raise BuildError(f"{where}: unknown instruction: {ins.cmd}")
    return handler(ins, state, env, where, lexer)


def _env(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    a, w = ins.args, lexer.word
    if not a:
        raise BuildError(f"{where}: ENV requires at least one argument")
    if len(a) % 2:
        raise BuildError(f"{where}: ENV must have two arguments")
    pairs = [(a[i], w(a[i + 1], env)) for i in range(0, len(a), 2)]
    for k, _ in pairs:
        if not k:
            raise BuildError(f"{where}: ENV names can not be blank")

    def f(st: State) -> None:
        cur = [e for e in st.cfg.get("Env") or []]
        for k, v in pairs:  # as Docker: a variable set again keeps its place
            keys = [e.partition("=")[0] for e in cur]
            if k in keys:
                cur[keys.index(k)] = f"{k}={v}"
            else:
                cur.append(f"{k}={v}")
        st.cfg["Env"] = cur

    return f, "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def _label(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    a, w = ins.args, lexer.word
    if not a or len(a) % 2:
        raise BuildError(
            f"{where}: LABEL requires at least one argument"
            if not a
            else f"{where}: LABEL must have two arguments"
        )
    pairs = [(w(a[i], env), w(a[i + 1], env)) for i in range(0, len(a), 2)]

    def f(st: State) -> None:
        labels = dict(st.cfg.get("Labels") or {})
        labels.update(pairs)
        st.cfg["Labels"] = labels

    return f, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def _maintainer(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    who = " ".join(ins.args)

    def f(st: State) -> None:
        st.config["author"] = who

    return f, f"MAINTAINER {who}"


def _expose(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    if not ins.args:
        raise BuildError(f"{where}: EXPOSE requires at least one argument")
    ports: list[str] = []
    for word in ins.args:
        for p in lexer.words(word, env):
            ports += _ports(p, where)
    return _add_keys("ExposedPorts", ports), "EXPOSE " + " ".join(sorted(ports))


def _user(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    if len(ins.args) != 1:
        raise BuildError(f"{where}: USER requires exactly one argument")
    user = lexer.word(ins.args[0], env)
    return _set("User", user), f"USER {user}"


def _volume(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    a = ins.args
    vols = (
        [lexer.word(v, env) for v in a] if ins.json else [x for v in a for x in lexer.words(v, env)]
    )
    if not vols or any(not v.strip() for v in vols):
        raise BuildError(f"{where}: VOLUME specified can not be an empty string")
    return _add_keys("Volumes", vols), "VOLUME " + json.dumps(vols)


def _stopsignal(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    if len(ins.args) != 1:
        raise BuildError(f"{where}: STOPSIGNAL requires exactly one argument")
    sig = lexer.word(ins.args[0], env)
    return _set("StopSignal", sig), f"STOPSIGNAL {sig}"


def _command(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    """CMD and ENTRYPOINT: the shell form runs in the stage's SHELL."""
    a, c = ins.args, ins.cmd
    shell = state.cfg.get("Shell") or DEFAULT_SHELL
    argv = list(a) if ins.json else ([*shell, a[0]] if a and a[0] else [])
    is_entry = c == "ENTRYPOINT"

    def f(st: State) -> None:
        if is_entry:
            st.cfg["Entrypoint"] = argv or None
            if not st.cmd_set:
                st.cfg["Cmd"] = None
        else:
            st.cfg["Cmd"] = argv or None

    return f, f"{c} {json.dumps(argv)}"


def _shell(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    if not ins.json or not ins.args:
        raise BuildError(f"{where}: SHELL requires the arguments to be in JSON form")
    sh = list(ins.args)
    return _set("Shell", sh), f"SHELL {json.dumps(sh)}"


def _onbuild(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    trig = ins.args[0] if ins.args else ""
    first = trig.split(None, 1)[0].upper() if trig.strip() else ""
    if first in ("ONBUILD",):
        raise BuildError(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if first in ("FROM", "MAINTAINER"):
        raise BuildError(f"{where}: {first} isn't allowed as an ONBUILD trigger")
    if not first:
        raise BuildError(f"{where}: ONBUILD requires at least one argument")

    def f(st: State) -> None:
        st.cfg["OnBuild"] = list(st.cfg.get("OnBuild") or []) + [trig]

    return f, f"ONBUILD {trig}"


def _healthcheck(
    ins: Instruction, state: State, env: dict[str, str], where: str, lexer: Lexer
) -> tuple[Mutate, str]:
    a = ins.args
    if not a:
        raise BuildError(f"{where}: HEALTHCHECK requires an argument")
    kind = a[0].upper()
    if kind == "NONE":
        if len(a) > 1 or ins.flags:
            raise BuildError(f"{where}: HEALTHCHECK NONE takes no arguments")
        hc: dict[str, Any] = {"Test": ["NONE"]}
    elif kind == "CMD":
        rest = a[1:]
        if not rest:
            raise BuildError(f"{where}: Missing command after HEALTHCHECK CMD")
        test = ["CMD", *rest] if ins.json else ["CMD-SHELL", rest[0]]
        hc = {"Test": test}
        from berth.units import parse_duration

        for flag, key in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ):
            if flag in ins.flags:
                hc[key] = int(parse_duration(ins.flags[flag]) * 1e9)
        if "retries" in ins.flags:
            hc["Retries"] = int(ins.flags["retries"])
    else:
        raise BuildError(f'{where}: Unknown type "{a[0]}" in HEALTHCHECK (try CMD)')
    return _set("Healthcheck", hc), "HEALTHCHECK " + " ".join(a)


_HANDLERS: dict[str, _Handler] = {
    "ENV": _env,
    "LABEL": _label,
    "MAINTAINER": _maintainer,
    "EXPOSE": _expose,
    "USER": _user,
    "VOLUME": _volume,
    "STOPSIGNAL": _stopsignal,
    "CMD": _command,
    "ENTRYPOINT": _command,
    "SHELL": _shell,
    "ONBUILD": _onbuild,
    "HEALTHCHECK": _healthcheck,
}


def _set(key: str, value: Any) -> Mutate:
    """A config step that sets one field of the container config."""

    def f(st: State) -> None:
        st.cfg[key] = value

    return f


def _add_keys(key: str, names: list[str]) -> Mutate:
    """A config step that adds names to a set-like field (ExposedPorts, Volumes)."""

    def f(st: State) -> None:
        st.cfg[key] = {**(st.cfg.get(key) or {}), **{n: {} for n in names}}

    return f


def _ports(p: str, where: str) -> list[str]:
    proto = "tcp"
    if "/" in p:
        p, proto = p.split("/", 1)
    proto = proto.lower()
    if ":" in p:
        raise BuildError(f"{where}: EXPOSE: invalid port {p}: use -p to map ports")
    if "-" in p:
        a, b = p.split("-", 1)
        if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
            raise BuildError(f"{where}: invalid range format for --expose: {p}")
        return [f"{x}/{proto}" for x in range(int(a), int(b) + 1)]
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise BuildError(f"{where}: invalid containerPort: {p}")
    return [f"{int(p)}/{proto}"]


__all__ = ["config_step", "Mutate"]
