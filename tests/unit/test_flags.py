"""berth.cmdline: the docker CLI's flag rules, with typed results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    integer,
    optional_integer,
    optional_string,
    string,
    strings,
    tristate,
)

SRC = Path(__file__).resolve().parents[2] / "src"


class RunLike(Options):
    INTERSPERSED = False
    detach = boolean("detach", "d")
    interactive = boolean("interactive", "i")
    tty = boolean("tty", "t")
    env = strings("env", "e")
    name = string("name")
    cpu_shares = integer("cpu-shares", "c")
    rm = boolean("rm")


class Force(Options):
    force = boolean("force", "f")


def test_docker_style_flags_and_command() -> None:
    opts, pos = RunLike.parse(
        [
            "-dit",
            "-eA=1",
            "--env",
            "B=2",
            "--name=x",
            "-c",
            "512",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo -e hi",
            "--rm",
        ]
    )
    assert opts.detach and opts.interactive and opts.tty and opts.rm
    assert opts.env == ["A=1", "B=2"] and opts.name == "x" and opts.cpu_shares == 512
    # everything after the image belongs to the command, flags included
    assert pos == ["busybox", "sh", "-c", "echo -e hi", "--rm"]


def test_interspersed_and_double_dash() -> None:
    opts, pos = Force.parse(["a", "-f", "b", "--", "-c"])
    assert opts.force and pos == ["a", "b", "-c"]


def test_defaults_and_fresh_lists() -> None:
    a, _ = RunLike.parse(["-e", "X=1", "img"])
    b, _ = RunLike.parse(["img"])
    assert a.env == ["X=1"] and b.env == [] and not b.detach and b.name == ""
    assert b.cpu_shares == 0


def test_optional_values_are_none_until_given() -> None:
    class Opt(Options):
        user = optional_string("user", "u")
        timeout = optional_integer("time", "t")
        verify = tristate("tlsverify")
        proxy = boolean("sig-proxy", default=True)

    opts, _ = Opt.parse([])
    assert (opts.user, opts.timeout, opts.verify, opts.proxy) == (None, None, None, True)
    opts, _ = Opt.parse(["-u", "", "-t0", "--tlsverify=false", "--sig-proxy=false"])
    assert (opts.user, opts.timeout, opts.verify, opts.proxy) == ("", 0, False, False)


def test_a_keyword_as_a_flag_name() -> None:
    class Ctx(Options):
        from_ = string("from")

    opts, _ = Ctx.parse(["--from", "x"])
    assert opts.from_ == "x" and [f.long for f in Ctx.FLAGS] == ["from"]


def test_subclasses_inherit_flags_first() -> None:
    class More(Force):
        all = boolean("all", "a")

    assert [f.attr for f in More.FLAGS] == ["force", "all"]
    assert [f.attr for f in Force.FLAGS] == ["force"]
    opts, _ = More.parse(["-fa"])
    assert opts.force and opts.all


def test_usage_lists_each_flag() -> None:
    text = RunLike.usage()
    assert "  -e, --env list" in text and "  -c, --cpu-shares int" in text
    assert "      --name string" in text


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (["--nope"], "unknown flag: --nope"),
        (["-x"], "unknown shorthand flag: 'x' in -x"),
        (["--name"], "flag needs an argument: --name"),
        (["-c", "many"], 'invalid argument "many" for "-c" flag'),
        (["--rm=maybe"], 'invalid argument "maybe" for "--rm" flag'),
    ],
)
def test_errors_are_dockers(argv: list[str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        RunLike.parse(argv)


def test_a_misspelt_option_is_a_type_error(tmp_path: Path) -> None:
    """What the options classes are for: mypy finds a name no flag has."""
    code = (
        "from berth.cli.ps import PsOptions\n"
        "opts, _ = PsOptions.parse([])\n"
        "print(opts.all, opts.no_trunc, opts.al)\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file=",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path),
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(SRC)},
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == (
        '<string>:3: error: "PsOptions" has no attribute "al"; maybe "all"?  [attr-defined]'
    )
