from __future__ import annotations

import pytest

from berth.cli.flags import Spec, UsageError, flag

RUN = Spec([flag("detach", "d"), flag("interactive", "i"), flag("tty", "t"),
            flag("env", "e", "list"), flag("name", kind="str", default=""),
            flag("cpu-shares", "c", "int", 0), flag("rm")], interspersed=False)


def test_docker_style_flags_and_command() -> None:
    opts, pos = RUN.parse(["-dit", "-eA=1", "--env", "B=2", "--name=x", "-c", "512", "--rm",
                           "busybox", "sh", "-c", "echo -e hi", "--rm"])
    assert opts["detach"] and opts["interactive"] and opts["tty"] and opts["rm"]
    assert opts["env"] == ["A=1", "B=2"] and opts["name"] == "x" and opts["cpu-shares"] == 512
    # everything after the image belongs to the command, flags included
    assert pos == ["busybox", "sh", "-c", "echo -e hi", "--rm"]


def test_interspersed_and_double_dash() -> None:
    spec = Spec([flag("force", "f")])
    opts, pos = spec.parse(["a", "-f", "b", "--", "-c"])
    assert opts["force"] and pos == ["a", "b", "-c"]


@pytest.mark.parametrize("argv,msg", [
    (["--nope"], "unknown flag: --nope"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["--name"], "flag needs an argument: --name"),
    (["-c", "many"], 'invalid argument "many" for "-c" flag'),
    (["--rm=maybe"], 'invalid argument "maybe" for "--rm" flag'),
])
def test_errors_are_dockers(argv: list[str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        RUN.parse(argv)
