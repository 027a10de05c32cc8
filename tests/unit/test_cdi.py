"""CDI specs (`berth.containers.cdi`) as hostile input: each file read bounded, never through a
symbolic link, its structure checked whole before any of it is used."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from berth.containers import cdi


def _spec(**edits: Any) -> dict[str, Any]:
    return {
        "cdiVersion": "0.6.0",
        "kind": "example.com/dev",
        "devices": [{"name": "one", "containerEdits": edits}],
    }


def test_cdi_spec_checked_as_hostile() -> None:
    ok = cdi.check_spec(
        _spec(
            env=["A=1"],
            deviceNodes=[{"path": "/dev/x", "major": 1, "minor": 3, "type": "c"}],
            mounts=[{"hostPath": "/usr/lib", "containerPath": "/opt/lib", "options": ["ro"]}],
            additionalGids=[44],
        )
    )
    assert list(ok) == ["example.com/dev=one"]
    bad: list[Any] = [
        [],
        {"kind": "../../etc", "devices": [{"name": "a"}]},
        {"kind": "example.com/dev", "devices": []},
        {"kind": "example.com/dev", "devices": [{"name": "a/../b"}]},
        {"kind": "example.com/dev", "devices": [{"name": "a"}] * (cdi.DEVICES_MAX + 1)},
        _spec(env=["NOEQUALS"]),
        _spec(env=["A=\0"]),
        _spec(env="A=1"),
        _spec(deviceNodes=[{"path": "dev/x"}]),
        _spec(deviceNodes=[{"path": "/dev/../etc/shadow"}]),
        _spec(deviceNodes=[{"path": "/dev/x", "hostPath": "relative"}]),
        _spec(deviceNodes=[{"path": "/dev/x", "major": True}]),
        _spec(deviceNodes=[{"path": "/dev/x", "major": -1}]),
        _spec(deviceNodes=[{"path": "/dev/x", "fileMode": 0o17777}]),
        _spec(deviceNodes=[{"path": "/dev/x", "type": "s"}]),
        _spec(deviceNodes=[{"path": "/dev/x", "permissions": "rwx"}]),
        _spec(mounts=[{"hostPath": "/etc", "containerPath": "../../etc"}]),
        _spec(mounts=[{"hostPath": "/etc/./x", "containerPath": "/x"}]),
        _spec(mounts=[{"hostPath": "/etc", "containerPath": "/x", "options": [1]}]),
        _spec(mounts=[{"containerPath": "/x"}]),
        _spec(additionalGids=[-1]),
        _spec(additionalGids=["0"]),
        _spec(hooks={"path": "/bin/true"}),
        _spec(env=["A=1"] * (cdi.EDITS_MAX + 1)),
    ]
    for doc in bad:
        with pytest.raises(ValueError):
            cdi.check_spec(doc)


def test_cdi_registry_reads_specs_bounded(tmp_path: Path) -> None:
    """A bad spec is skipped, the good ones kept; a spec is never read through a symbolic
    link, nor when it is no regular file (a FIFO would block), nor past its size bound."""
    d = tmp_path / "cdi"
    d.mkdir()
    (d / "good.json").write_text(json.dumps(_spec(env=["A=1"])))
    other = _spec(env=["B=1"])
    other["kind"] = "example.com/other"
    (tmp_path / "elsewhere.json").write_text(json.dumps(other))
    (d / "link.json").symlink_to(tmp_path / "elsewhere.json")
    os.mkfifo(d / "fifo.json")
    big = _spec()
    big["kind"] = "example.com/big"
    (d / "big.json").write_text(json.dumps(big) + " " * cdi.SPEC_MAX)  # valid, too large
    assert len((d / "big.json").read_bytes()) > cdi.SPEC_MAX
    (d / "bad.json").write_text("{not json")
    (d / "traversal.json").write_text(
        json.dumps(
            {**_spec(mounts=[{"hostPath": "/", "containerPath": "/../../x"}]), "kind": "e.com/t"}
        )
    )
    reg = cdi.Registry((str(d), str(tmp_path / "missing"))).load()
    assert list(reg.devices) == ["example.com/dev=one"]


def test_cdi_registry_bounds_the_number_of_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cdi, "SPEC_FILES_MAX", 3)
    for i in range(5):
        doc = _spec()
        doc["kind"] = f"example.com/k{i}"
        (tmp_path / f"{i}.json").write_text(json.dumps(doc))
    assert len(cdi.Registry((str(tmp_path),)).load().devices) == 3
