"""`--security-opt no-new-privileges`: one parser for the init's spec and every exec's."""

from __future__ import annotations

import pytest

from berth.containers.hostconfig import HostConfig
from berth.containers.spec import no_new_privileges
from berth.errors import InvalidArgument


@pytest.mark.parametrize(
    "opts, on",
    [
        ([], False),
        (["no-new-privileges"], True),
        (["no-new-privileges:true"], True),
        (["no-new-privileges=true"], True),
        (["no-new-privileges=1"], True),
        (["no-new-privileges:false"], False),
        (["no-new-privileges=false"], False),
        (["no-new-privileges", "no-new-privileges=false"], False),  # the last one wins
        (["no-new-privileges:false", "no-new-privileges"], True),
        (["seccomp=unconfined", "apparmor=unconfined"], False),
    ],
)
def test_spellings(opts: list[str], on: bool) -> None:
    assert no_new_privileges(HostConfig.from_json({"SecurityOpt": opts})) is on


@pytest.mark.parametrize(
    "opt", ["no-new-privileges:maybe", "no-new-privileges=", "no-new-privileges:yes"]
)
def test_a_bad_value_is_dockers_error(opt: str) -> None:
    with pytest.raises(InvalidArgument, match=f'invalid --security-opt 2: "{opt}"'):
        no_new_privileges(HostConfig(security_opt=(opt,)))


def test_none_is_off() -> None:
    assert no_new_privileges(HostConfig.from_json({"SecurityOpt": None})) is False
    assert no_new_privileges(HostConfig()) is False
