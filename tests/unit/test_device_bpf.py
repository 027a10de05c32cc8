"""The cgroup v2 device program built from runtime-spec device rules: its instructions, run by a
small interpreter of the opcodes the compiler emits, must give the reference reading of the
rules (`devices.evaluate`, and by hand for the cases that matter) for every request. No root."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest

from berth import cgroups
from berth.cgroups import devices
from berth.containers.spec import DEFAULT_DEVICE_RULES
from berth.errors import InvalidArgument, System
from berth.linux import bpf
from berth.runtime import process

B, C = devices.DEV_BLOCK, devices.DEV_CHAR
M, R, W = devices.ACC_MKNOD, devices.ACC_READ, devices.ACC_WRITE
U64 = (1 << 64) - 1


def _decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    assert len(code) % 8 == 0 and code
    return [
        (op, regs & 0xF, regs >> 4, off, imm)
        for op, regs, off, imm in struct.iter_unpack("<BBhi", code)
    ]


def check_shape(code: bytes) -> None:
    """What the kernel's verifier would refuse: jumps out of the program or backwards, code
    no path reaches, a fall off the end."""
    insns = _decode(code)
    reached = {0}
    for pc, (op, _, _, off, _) in enumerate(insns):
        if pc not in reached:
            raise AssertionError(f"unreachable instruction {pc}")
        if op == devices.EXIT:
            continue
        if op in (devices.JEQ_K, devices.JNE_K):
            assert off >= 0, "backward jump"
            assert pc + 1 + off < len(insns), "jump out of the program"
            reached.add(pc + 1 + off)
        assert pc + 1 < len(insns), "falls off the end"
        reached.add(pc + 1)


def run(code: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Interpret the program over a `struct bpf_cgroup_dev_ctx`."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs: dict[int, int] = {1: -1}  # r1: the context (a pointer, not a number)
    insns = _decode(code)
    pc = 0
    for _ in range(len(insns) + 1):
        op, dst, src, off, imm = insns[pc]
        pc += 1
        k = imm & U64  # the immediate, sign-extended to 64 bits
        if op == devices.LDX_MEM_W:
            assert regs[src] == -1 and off in (0, 4, 8), "ctx reads only, aligned u32"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == devices.MOV64_K:
            regs[dst] = k
        elif op == devices.MOV64_X:
            assert regs[src] != -1
            regs[dst] = regs[src]
        elif op == devices.AND64_K:
            regs[dst] = regs[dst] & k
        elif op == devices.RSH64_K:
            regs[dst] = regs[dst] >> imm
        elif op == devices.JEQ_K:
            pc += off if regs[dst] == k else 0
        elif op == devices.JNE_K:
            pc += off if regs[dst] != k else 0
        elif op == devices.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"opcode {op:#x}")
    raise AssertionError("no exit")


def _cases(rules: list[devices.Rule]) -> list[tuple[int, int, int, int]]:
    majors = {0, 1, 7, 254, 4095} | {r.major for r in rules if r.major is not None}
    minors = {0, 3, 9, (1 << 20) - 1} | {r.minor for r in rules if r.minor is not None}
    return [
        (t, ma, mi, acc) for t in (B, C) for ma in majors for mi in minors for acc in range(1, 8)
    ]


def _agree(spec_rules: list[dict[str, Any]]) -> bytes:
    rules = devices.parse(spec_rules)
    code = devices.compile_rules(spec_rules)
    check_shape(code)
    for case in _cases(rules):
        assert run(code, *case) == int(devices.evaluate(rules, *case)), (spec_rules, case)
    return code


def _docker_default() -> list[dict[str, Any]]:
    lx = {"resources": {"devices": [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES]}}
    rules: list[dict[str, Any]] = process.cgroup_resources(lx)["devices"]
    return rules


def test_docker_default_rules() -> None:
    code = _agree(_docker_default())
    assert run(code, C, 1, 3, R | W) == 1  # /dev/null
    assert run(code, C, 136, 5, R | W) == 1  # a pty
    assert run(code, B, 254, 0, M) == 1  # mknod of any node is allowed...
    for acc in (R, W, R | W):
        assert run(code, B, 254, 0, acc) == 0  # ...opening a disk is not
        assert run(code, C, 1, 1, acc) == 0  # nor /dev/mem
        assert run(code, C, 10, 237, acc) == 0  # nor loop-control


def test_privileged_and_empty() -> None:
    code = _agree([{"allow": True, "access": "rwm"}])
    assert run(code, B, 254, 0, R | W) == 1
    assert len(code) == 8 * 8  # the context read, then "allow" with no default after it
    code = _agree([{"allow": False}])
    assert run(code, C, 1, 3, R) == 0


def test_last_match_wins_and_partial_access() -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
        {"allow": True, "type": "b", "major": 7, "minor": None, "access": "r"},
    ]
    code = _agree(rules)
    assert run(code, C, 1, 3, R) == 1
    assert run(code, C, 1, 3, W) == 0
    assert run(code, C, 1, 3, R | W) == 0  # asks for what a later rule denies
    assert run(code, B, 7, 12, R) == 1
    assert run(code, B, 7, 12, R | W) == 0  # more than the rule grants
    assert run(code, C, 7, 12, R) == 0  # the type matters
    # a later "a" resets what came before
    code = _agree([*rules, {"allow": True, "type": "a"}])
    assert run(code, C, 1, 3, W) == 1
    assert len(code) == 8 * 8


def test_allow_all_then_deny_some() -> None:
    code = _agree(
        [
            {"allow": True, "access": "rwm"},
            {"allow": False, "type": "b", "major": -1, "minor": -1, "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": None, "access": "m"},
        ]
    )
    assert run(code, B, 254, 0, R) == 0
    assert run(code, B, 254, 0, M) == 1
    assert run(code, C, 1, 3, M) == 0
    assert run(code, C, 1, 3, R | W) == 1


def test_random_rule_sets() -> None:
    rnd = random.Random(13)
    for _ in range(150):
        rules: list[dict[str, Any]] = []
        for _ in range(rnd.randint(0, 7)):
            typ = rnd.choice(["a", "b", "c", "c", "b"])
            acc = "".join(ch for ch in "rwm" if rnd.random() < 0.6) or "rwm"
            rules.append(
                {
                    "allow": rnd.random() < 0.6,
                    "type": typ,
                    "major": rnd.choice([None, -1, 1, 7, 254]),
                    "minor": rnd.choice([None, -1, 0, 3, 9]),
                    "access": acc,
                }
            )
        _agree(rules)


def test_numbers_no_device_has_never_match() -> None:
    code = _agree(
        [
            {"allow": False, "type": "b", "major": 0x80000000, "minor": 0, "access": "r"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        ]
    )
    assert run(code, C, 1, 3, R) == 1


@pytest.mark.parametrize(
    "rule",
    [
        {"allow": True, "type": "x"},
        {"allow": True, "type": "c", "access": "rwx"},
        {"allow": True, "type": "c", "major": -2},
        {"allow": True, "type": "c", "minor": "3"},
        {"allow": True, "type": "c", "major": 1 << 32},
    ],
)
def test_bad_rules_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        devices.compile_rules([rule])


def test_v2_manager_attaches_before_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    calls: list[tuple[str, bytes]] = []
    monkeypatch.setattr(bpf, "attach_cgroup_device", lambda d, p: calls.append((d, p)))
    rules = tuple(_docker_default())
    cgroups.V2("berth/c3", root=str(tmp_path)).create(
        cgroups.Resources(devices=rules, pids_limit=5)
    )
    assert calls == [(str(tmp_path / "berth" / "c3"), devices.compile_rules(rules))]
    # no rules (docker update): the program stays as it is
    cgroups.V2("berth/c3", root=str(tmp_path)).create(cgroups.Resources(pids_limit=6))
    assert len(calls) == 1


def test_v2_manager_refuses_when_the_program_cannot_be_attached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(d: str, p: bytes) -> None:
        raise OSError(1, "bpf prog load: Operation not permitted")

    monkeypatch.setattr(bpf, "attach_cgroup_device", fail)
    with pytest.raises(System, match="device rules"):
        cgroups.V2("berth/c4", root=str(tmp_path)).create(
            cgroups.Resources(devices=tuple(_docker_default()))
        )


def test_v1_without_devices_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(bpf, "attach_cgroup_device", lambda d, p: calls.append(d))
    rules = tuple(_docker_default())
    (tmp_path / "pids").mkdir()
    (tmp_path / "unified").mkdir()
    (tmp_path / "devices").mkdir()
    # the devices controller: its files, as today
    cgroups.V1(
        "berth/c5", mounts={"devices": str(tmp_path / "devices"), "": str(tmp_path / "unified")}
    ).create(cgroups.Resources(devices=rules[:1]))
    assert (tmp_path / "devices/berth/c5/devices.deny").read_text() == "a"
    assert calls == []
    # hybrid without it: the unified hierarchy's program
    cgroups.V1(
        "berth/c5", mounts={"pids": str(tmp_path / "pids"), "": str(tmp_path / "unified")}
    ).create(cgroups.Resources(devices=rules))
    assert calls == [str(tmp_path / "unified/berth/c5")]
    # neither: refused, not dropped
    with pytest.raises(System, match="device rules"):
        cgroups.V1("berth/c6", mounts={"pids": str(tmp_path / "pids")}).create(
            cgroups.Resources(devices=rules)
        )
