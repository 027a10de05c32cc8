"""A container's environment as dockerd makes it (checked side by side with dockerd in
tests/integration/test_dockerd_compat.py)."""

from __future__ import annotations

import pytest

from berth.containers.spec import DEFAULT_PATH, merge_env, process_env, replace_or_append
from berth.errors import InvalidArgument


def test_config_env_keeps_what_was_given_then_the_image_s() -> None:
    assert merge_env(["PATH=/i", "A=img", "B=img"], ["A=1", "Foo"]) == [
        "A=1",
        "Foo",
        "PATH=/i",
        "B=img",
    ]
    assert merge_env(["A=img"], ["A"]) == ["A"]  # recorded; unsets A in the process
    assert merge_env(None, None) == []
    with pytest.raises(InvalidArgument):
        merge_env([], ["=x"])


def test_replace_or_append_unsets_names_without_a_value() -> None:
    assert replace_or_append(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]
    assert replace_or_append(["A=1"], ["Z"]) == ["A=1"]


def test_process_env() -> None:
    assert process_env(["A=1", "Foo"], "h", False) == [DEFAULT_PATH, "HOSTNAME=h", "A=1"]
    assert process_env(["TERM=dumb"], "h", True) == [DEFAULT_PATH, "HOSTNAME=h", "TERM=dumb"]
    assert process_env(["PATH"], "h", False) == ["HOSTNAME=h"]  # as dockerd: PATH unset
    assert process_env(["A=1"], "h", True, ["A", "X=1"]) == [
        DEFAULT_PATH,
        "HOSTNAME=h",
        "TERM=xterm",
        "X=1",
    ]
