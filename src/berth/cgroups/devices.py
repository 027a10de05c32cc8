"""The runtime-spec device rules (`linux.resources.devices`) as a cgroup v2 device program.

Imports `errors`. cgroup v2 has no devices controller: the kernel asks a BPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, on every mknod and every open of a device
node by a process in it (runc and crun do the same). This module only builds the program's
bytes (no syscalls); `linux.bpf` loads and attaches them.

The rules are read as the v1 devices controller and runc's emulator read them: in order, the
last rule that matches a request decides, and a request no rule matches is denied. A rule of
type "a" (or none) matches every device and access, as writing `a` to devices.allow or
devices.deny resets the whole list. An allow rule matches when it grants every access asked
for; a deny rule when it denies any of them (a request to open read-write is refused by a rule
that denies writing). Where the kernel's v1 list keeps a wildcard exception that a narrower
deny rule cannot split (`allow c *:* rwm` then `deny c 1:3 rwm`), this program denies: it
never allows what v1 would refuse.

The program's context is `struct bpf_cgroup_dev_ctx` { u32 access_type (low 16 bits the device
type BPF_DEVCG_DEV_BLOCK 1 / CHAR 2, high 16 bits the access BPF_DEVCG_ACC_MKNOD 1 / READ 2 /
WRITE 4); u32 major; u32 minor }; it returns 1 to allow and 0 to refuse (EPERM).
"""

from __future__ import annotations

import _struct as struct

from berth.errors import InvalidArgument

TYPE_CHECKING = False  # not typing's (berth-runtime imports this on a v2 host)
if TYPE_CHECKING:
    from typing import Any

DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE

_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# the eBPF opcodes this compiler emits (<linux/bpf.h>, <linux/bpf_common.h>)
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W:    dst = *(u32 *)(src + off)
MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K:  dst = imm
MOV64_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X:  dst = src
AND64_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K:  dst &= imm
RSH64_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K:  dst >>= imm
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K:    if dst == imm: pc += off
JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K:    if dst != imm: pc += off
EXIT = 0x95  # BPF_JMP | BPF_EXIT:           return r0

# registers: r1 the context; the request, once read, in r2 (access) r3 (type) r4 (major)
# r5 (minor); r6 scratch; r0 the verdict
_R0, _R1, _ACC, _TYPE, _MAJOR, _MINOR, _TMP = 0, 1, 2, 3, 4, 5, 6

Insn = tuple[int, int, int, int, int]
"""(opcode, dst register, src register, offset, immediate)"""


class Rule:
    """One device rule, checked: type 0 for "a" (every device), major/minor None for any."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(
        self, allow: bool, type: int, major: int | None, minor: int | None, access: int
    ) -> None:
        self.allow, self.type, self.major, self.minor, self.access = (
            allow,
            type,
            major,
            minor,
            access,
        )

    def __repr__(self) -> str:
        return (
            f"Rule(allow={self.allow}, type={self.type}, major={self.major}, "
            f"minor={self.minor}, access={self.access})"
        )


def _number(rule: dict[str, Any], key: str) -> int | None:
    v = rule.get(key)
    if v is None or v == -1:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise InvalidArgument(f"device rule {rule!r}: invalid {key} {v!r}")
    return v


def parse(rules: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[Rule]:
    """The runtime-spec rules, checked: {"allow", "type" a|b|c, "major", "minor" (None or -1
    for any), "access" (some of "rwm"; none for all)}."""
    out = []
    for r in rules:
        typ = r.get("type") or "a"
        if typ != "a" and typ not in _TYPES:
            raise InvalidArgument(f"device rule {r!r}: invalid type {typ!r}")
        acc = 0
        for ch in r.get("access") or "rwm":
            if ch not in _ACCESS:
                raise InvalidArgument(f"device rule {r!r}: invalid access {r.get('access')!r}")
            acc |= _ACCESS[ch]
        if typ == "a":  # as v1's `a`: every device, every access
            out.append(Rule(bool(r.get("allow")), 0, None, None, ACC_ALL))
        else:
            out.append(
                Rule(
                    bool(r.get("allow")), _TYPES[typ], _number(r, "major"), _number(r, "minor"), acc
                )
            )
    return out


def evaluate(rules: list[Rule], dev_type: int, major: int, minor: int, access: int) -> bool:
    """The reference reading of the rules (what the program must compute): whether a request
    of `access` (ACC_* bits) to the device is allowed."""
    for r in reversed(rules):
        if not r.type:
            return r.allow
        if r.type != dev_type:
            continue
        if r.major is not None and r.major != major or r.minor is not None and r.minor != minor:
            continue
        if r.allow and access & ~r.access == 0 or not r.allow and access & r.access:
            return r.allow
    return False


def _block(rule: Rule) -> list[Insn] | None:
    """The instructions for one rule: its checks, each jumping past the block when the request
    does not match (offset -1 until the block's length is known), then its verdict. None for
    a rule no device can match (a number the kernel's 32-bit signed immediates cannot hold
    is above any major (12 bits) or minor (20 bits) a device node has)."""
    if not rule.type:  # "a": every request, unconditionally
        return [(MOV64_K, _R0, 0, 0, 1 if rule.allow else 0), (EXIT, 0, 0, 0, 0)]
    checks: list[Insn] = [(JNE_K, _TYPE, 0, -1, rule.type)]
    for reg, value in ((_MAJOR, rule.major), (_MINOR, rule.minor)):
        if value is not None:
            if value > 0x7FFFFFFF:
                return None
            checks.append((JNE_K, reg, 0, -1, value))
    if rule.allow:
        if rule.access != ACC_ALL:  # asks for an access the rule does not grant: no match
            checks += [
                (MOV64_X, _TMP, _ACC, 0, 0),
                (AND64_K, _TMP, 0, 0, 0xFFFF & ~rule.access),
                (JNE_K, _TMP, 0, -1, 0),
            ]
    else:  # asks for none of the accesses the rule denies: no match
        checks += [
            (MOV64_X, _TMP, _ACC, 0, 0),
            (AND64_K, _TMP, 0, 0, rule.access),
            (JEQ_K, _TMP, 0, -1, 0),
        ]
    block = checks + [(MOV64_K, _R0, 0, 0, 1 if rule.allow else 0), (EXIT, 0, 0, 0, 0)]
    return [
        (op, d, s, len(block) - i - 1 if off == -1 else off, imm)
        for i, (op, d, s, off, imm) in enumerate(block)
    ]


def program(rules: list[Rule]) -> list[Insn]:
    """The device program for `rules`, as instructions."""
    insns: list[Insn] = [
        (LDX_MEM_W, _ACC, _R1, 0, 0),  # access_type
        (MOV64_X, _TYPE, _ACC, 0, 0),
        (AND64_K, _TYPE, 0, 0, 0xFFFF),  # its low half: the device type
        (RSH64_K, _ACC, 0, 0, 16),  # its high half: the access
        (LDX_MEM_W, _MAJOR, _R1, 4, 0),
        (LDX_MEM_W, _MINOR, _R1, 8, 0),
    ]
    for rule in reversed(rules):  # the last rule that matches decides: it is checked first
        block = _block(rule)
        if block is not None:
            insns += block
        if not rule.type:
            return insns  # an "a" rule matches every request: the rules before it never decide
    return insns + [(MOV64_K, _R0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]  # none matched: denied


def encode(insns: list[Insn]) -> bytes:
    """`struct bpf_insn`s (little-endian: the register nibbles are laid out for x86_64 and
    aarch64, dst in the low one)."""
    return b"".join(
        struct.pack("<BBhi", op, (src << 4) | dst, off, imm) for op, dst, src, off, imm in insns
    )


def compile_rules(rules: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> bytes:
    """The runtime-spec device rules as the bytes of a cgroup device program."""
    return encode(program(parse(rules)))


__all__ = [
    "Rule",
    "parse",
    "evaluate",
    "program",
    "encode",
    "compile_rules",
    "DEV_BLOCK",
    "DEV_CHAR",
    "ACC_MKNOD",
    "ACC_READ",
    "ACC_WRITE",
]
