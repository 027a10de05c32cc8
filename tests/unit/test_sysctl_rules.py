"""Which sysctls a container may set (runtime.sysctl): runc's rules, and names that cannot
leave /proc/sys."""

from __future__ import annotations

import pytest

from berth.oci import sysctl

PRIVATE = {"ipc": True, "net": True, "uts": True}


@pytest.mark.parametrize(
    "name",
    [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "fs.mqueue.msg_max",
        "net.ipv4.ip_forward",
        "net.ipv4.conf.eth0.accept_local",
        "net.ipv4.conf.br-x_1.rp_filter",
        "kernel.domainname",
    ],
)
def test_namespaced_ones_are_allowed_in_their_own_namespace(name: str) -> None:
    assert sysctl.refusal(name, **PRIVATE) is None


@pytest.mark.parametrize(
    "name",
    [
        "kernel.core_pattern",
        "kernel.randomize_va_space",
        "vm.overcommit_memory",
        "fs.file-max",
        "kernel.modprobe",
        "kernel.msgmax2",
        "kernel",
        "fs.mqueue",
    ],
)
def test_global_ones_are_refused(name: str) -> None:
    assert (
        sysctl.refusal(name, **PRIVATE) == f'sysctl "{name}" is not in a separate kernel namespace'
    )


@pytest.mark.parametrize(
    "name",
    [
        "net/../kernel/core_pattern",
        "net.ipv4.ip_forward/../../kernel/core_pattern",
        "net..ipv4",
        "net.",
        ".net.ipv4",
        "net.ipv4.conf.eth0 .x",
        "net.ipv4.conf.\0.x",
        "net.ipv4.conf.-.x",
        "",
        "net." + "a" * 300,
    ],
)
def test_names_with_a_way_out_are_refused(name: str) -> None:
    assert sysctl.refusal(name, **PRIVATE) == f"invalid sysctl name {name!r}"


def test_the_namespace_must_be_the_containers_own() -> None:
    assert "not allowed in host network namespace" in str(
        sysctl.refusal("net.ipv4.ip_forward", ipc=True, net=False, uts=True)
    )
    assert "hosts ipc namespace" in str(
        sysctl.refusal("kernel.shmmax", ipc=False, net=True, uts=True)
    )
    assert "hosts ipc namespace" in str(
        sysctl.refusal("fs.mqueue.msg_max", ipc=False, net=True, uts=True)
    )
    assert "separate kernel namespace" in str(
        sysctl.refusal("kernel.domainname", ipc=True, net=True, uts=False)
    )
    assert "conflicts with the OCI" in str(sysctl.refusal("kernel.hostname", **PRIVATE))


def test_check_spec_reads_the_namespaces() -> None:
    ok = {
        "namespaces": [{"type": t} for t in ("ipc", "uts", "network")],
        "sysctl": {"net.ipv4.ip_forward": "1", "kernel.sem": "1 2 3 4"},
    }
    assert sysctl.check_spec(ok) is None
    no_net = {"namespaces": [{"type": "ipc"}], "sysctl": {"net.ipv4.ip_forward": "1"}}
    assert "host network namespace" in str(sysctl.check_spec(no_net))
    # joining the caller's own network namespace by path is the host's
    own = {
        "namespaces": [{"type": "network", "path": "/proc/self/ns/net"}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
    }
    assert "host network namespace" in str(sysctl.check_spec(own))
    assert "map of strings" in str(sysctl.check_spec({"sysctl": ["net.x=1"]}))
    assert "invalid value" in str(
        sysctl.check_spec(
            {"namespaces": [{"type": "network"}], "sysctl": {"net.ipv4.ip_forward": 1}}
        )
    )


def test_cli_flag_is_checked_as_the_docker_cli_does() -> None:
    from berth.cli.runflags import _sysctl_flag
    from berth.cmdline import UsageError

    assert _sysctl_flag("net.ipv4.ip_forward=1") == "net.ipv4.ip_forward=1"
    assert _sysctl_flag("kernel.sem=1 2 3 4") == "kernel.sem=1 2 3 4"
    for bad in ("net.ipv4.ip_forward", "kernel.core_pattern=x", "=1"):
        with pytest.raises(UsageError, match="is not allowed"):
            _sysctl_flag(bad)
