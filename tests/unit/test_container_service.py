"""ContainerService over a fake shim (tests/unit/fake_shim.py): the container lifecycle without
root, a fork server or a runtime. The processes are plain children of the test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from berth.api.containers_wire import container_inspect, create_request, exec_config
from berth.containers import Config, ContainerService
from berth.containers.hostconfig import LogConfig, ResourcesUpdate, RestartPolicy
from berth.containers.ports import Port
from berth.containers.record import VERSION, ContainerRecord
from berth.containers.settings import HealthConfig
from berth.errors import Conflict, InvalidArgument, NotFound, NotModified
from berth.images import ImageConfig
from berth.metadata import MetadataStore
from berth.shim import protocol

from .fake_shim import FakeShim


@dataclass
class _Image:
    id: str = "sha256:" + "ab" * 32
    container_config: dict[str, Any] = field(
        default_factory=lambda: {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        }
    )

    @property
    def spec(self) -> ImageConfig:
        return ImageConfig.from_doc({"config": self.container_config})


class _Images:
    """The image service as far as containers use it: one image, no layers."""

    def __init__(self) -> None:
        self.image = _Image()
        self.layer_store = None

    def resolve(self, name: str) -> _Image:
        if name != "fake":
            raise NotFound(f"No such image: {name}")
        return self.image

    def layers_of(self, image: _Image) -> list[Any]:
        return []

    def gc(self) -> None:
        pass


@dataclass
class _Mount:
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ()


class _Driver:
    """A storage driver that makes an empty directory per container."""

    name = "fake"

    def __init__(self, root: Path) -> None:
        self.root = root

    def upper(self, cid: str) -> str:
        return str(self.root / cid)

    def prepare(self, cid: str, layers: list[Any]) -> None:
        (self.root / cid).mkdir(parents=True)

    def mount(self, cid: str, layers: list[Any]) -> _Mount:
        return _Mount(self.upper(cid))

    def remove(self, cid: str) -> None:
        import shutil

        shutil.rmtree(self.root / cid, ignore_errors=True)


Scenario = Callable[[ContainerService, FakeShim], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario, **cfg_kw: Any) -> list[tuple[str, str]]:
    """Run `scenario` against a fresh service; the events it emitted."""
    events: list[tuple[str, str]] = []

    async def main() -> None:
        shim = FakeShim()
        meta = MetadataStore(str(tmp_path / "meta.db"))
        cfg = Config(
            data_root=str(tmp_path / "data"),
            exec_root=str(tmp_path / "exec"),
            forkserver=str(tmp_path / "forkserver.sock"),
            **cfg_kw,
        )
        svc = ContainerService(
            cfg,
            meta,
            _Images(),
            _Driver(tmp_path / "layers"),  # type: ignore[arg-type]
            emit=lambda typ, action, actor, attrs: events.append((action, actor)),
            open_channel=shim.open,
        )
        try:
            await asyncio.wait_for(scenario(svc, shim), 30)
        finally:
            await svc.close()
            await shim.close()
            meta.close()

    asyncio.run(main())
    return events


def _inspect(svc: ContainerService, cid: str) -> dict[str, Any]:
    """Docker's inspect JSON of the container, as the API makes it from the record."""
    return container_inspect(svc.inspect(cid))


async def _create(svc: ContainerService, *cmd: str, **hc: Any) -> str:
    cid, _ = await svc.create(
        create_request(
            {"Image": "fake", "Cmd": list(cmd), "HostConfig": {"NetworkMode": "none", **hc}}
        )
    )
    return cid


def test_run_to_its_exit_code_with_output_in_the_log(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "sh", "-c", "echo hello; echo oops >&2; exit 3")
        assert svc.resolve(cid).state.status == "created"
        await svc.start(cid)
        assert (await svc.wait(cid)).code == 3
        st = _inspect(svc, cid)["State"]
        assert (st["Status"], st["Running"], st["ExitCode"], st["Pid"]) == ("exited", False, 3, 0)
        with open(svc.resolve(cid).log_path) as f:
            entries = [json.loads(line) for line in f]
        assert {(e["stream"], e["log"]) for e in entries} == {
            ("stdout", "hello\n"),
            ("stderr", "oops\n"),
        }
        req = shim.requests[0]
        assert req.version == protocol.PROTOCOL_VERSION and req.id == cid and not req.tty
        assert req.rootfs_mount is not None and req.rootfs_mount.type == "bind"

    events = _run(tmp_path, scenario)
    assert [a for a, _ in events] == ["create", "start", "die"]


def test_start_twice_is_not_modified_and_stop_ends_it(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "sleep", "30")
        await svc.start(cid)
        st = _inspect(svc, cid)["State"]
        assert st["Running"] and st["Pid"] > 0
        os.kill(st["Pid"], 0)  # a real process, which the service signals by pid
        with pytest.raises(NotModified):
            await svc.start(cid)
        await svc.stop(cid, timeout=5)
        st = _inspect(svc, cid)["State"]
        assert (st["Status"], st["ExitCode"]) == ("exited", 128 + signal.SIGTERM)
        with pytest.raises(NotModified):
            await svc.stop(cid)

    _run(tmp_path, scenario)


def test_kill_returns_once_the_container_is_dead(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "sleep", "30")
        await svc.start(cid)
        await svc.kill(cid)
        assert svc.resolve(cid).state.exit_code == 137
        with pytest.raises(Conflict):
            await svc.kill(cid)

    _run(tmp_path, scenario)


def test_remove_a_running_container_needs_force(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "sleep", "30")
        await svc.start(cid)
        with pytest.raises(Conflict):
            await svc.remove(cid)
        await svc.remove(cid, force=True)
        with pytest.raises(NotFound):
            _inspect(svc, cid)
        assert not os.path.exists(svc.store.dir(cid))

    events = _run(tmp_path, scenario)
    assert [a for a, _ in events][-2:] == ["die", "destroy"]


def test_on_failure_restarts_up_to_its_count(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(
            svc, "sh", "-c", "exit 1", RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 2}
        )
        await svc.start(cid)
        for _ in range(3):  # the first run and two restarts (100 ms, then 200 ms later)
            assert (await svc.wait(cid, "next-exit")).code == 1
        await asyncio.sleep(0.5)
        doc = _inspect(svc, cid)
        assert (doc["RestartCount"], doc["State"]["Status"]) == (2, "exited")
        assert len(shim.requests) == 3

    events = _run(tmp_path, scenario)
    assert [a for a, _ in events].count("start") == 3


def test_a_command_that_is_not_found_fails_the_start(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "/no/such/command")
        with pytest.raises(InvalidArgument, match="no/such/command"):
            await svc.start(cid)
        st = _inspect(svc, cid)["State"]
        assert (st["Status"], st["ExitCode"], st["Running"]) == ("created", 127, False)
        assert "no/such/command" in st["Error"]

    _run(tmp_path, scenario)


def test_a_shim_that_fails_before_the_process_reports_its_error(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        shim.before_start = lambda req: protocol.Exit(
            exit=125, error="failed to create cgroup: no", code=125
        )
        cid = await _create(svc, "true")
        with pytest.raises(Exception, match="failed to create cgroup"):
            await svc.start(cid)
        assert svc.resolve(cid).state.exit_code == 125

    _run(tmp_path, scenario)


def test_a_live_monitor_that_answers_late_is_reconnected(tmp_path: Path) -> None:
    """At start-up a monitor may not answer at once (a loaded machine): while it lives, the
    service tries again instead of declaring the container dead; a dead one is given up."""

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        from berth.containers.channel import Channel

        tries: list[str] = []

        async def late(path: str, request: protocol.StartRequest | None) -> Channel:
            tries.append(path)
            if len(tries) < 3:
                raise ConnectionRefusedError("not yet")
            ours, theirs = socket.socketpair()
            theirs.sendall(protocol.encode_control(protocol.Ready(pid=1, monitor=os.getpid())))
            theirs.close()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            return Channel(reader, writer)

        svc.open_channel = late
        cid = await _create(svc, "true")
        ch, hello = await svc.monitors.reconnect(cid, os.getpid())
        assert isinstance(hello, protocol.Ready) and len(tries) == 3
        assert ch is not None
        ch.writer.close()
        tries.clear()
        dead = await asyncio.create_subprocess_exec("true")
        await dead.wait()
        assert await svc.monitors.reconnect(cid, dead.pid) == (None, None)
        assert len(tries) == 1

    _run(tmp_path, scenario)


def test_an_upgraded_daemon_keeps_the_containers_an_older_one_stored(tmp_path: Path) -> None:
    """berthd before typed records stored Docker's inspect document with `_berth`: the service
    loads it, can run it, and saves it back as its own versioned record."""
    from .test_container_record import LEGACY

    legacy = json.loads(json.dumps(LEGACY))
    legacy["HostConfig"]["NetworkMode"] = "none"
    legacy["NetworkSettings"] = {"Networks": {"none": {}}, "Ports": {}}
    legacy["_berth"].update(nets=[], links=[])
    legacy["_berth"]["layers"] = []
    cid = legacy["Id"]
    meta = MetadataStore(str(tmp_path / "meta.db"))
    meta.put_container(cid, "web", legacy["Image"], 1796101200, legacy)
    meta.close()

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        assert svc.resolve("web").id == cid
        assert _inspect(svc, cid)["State"]["ExitCode"] == 3
        assert [v.record.id for v in svc.list(all_=True)] == [cid]
        await svc.rename("web", "web2")
        stored = svc.meta.containers()
        assert [(s["v"], s["name"]) for s in stored] == [(VERSION, "/web2")]

    _run(tmp_path, scenario)


@pytest.mark.parametrize("real_runc", [False, True])
def test_runtime_names_as_clients_know_them(tmp_path: Path, real_runc: bool) -> None:
    """Where no real runc is configured, berth's own runtime goes by dockerd's name "runc" in
    what the API shows and accepts; where one is, "runc" is that binary and berth's is "berth"
    (issue 15)."""
    runtimes = {"berth": "", **({"runc": "/usr/sbin/runc"} if real_runc else {})}
    cfg = Config(data_root="d", exec_root="e", forkserver="f", runtimes=runtimes)
    assert cfg.runtime_key("") == cfg.runtime_key("berth-runtime") == "berth"
    assert cfg.runtime_key("runc") == ("runc" if real_runc else "berth")
    assert cfg.runtime_shown("berth") == ("berth" if real_runc else "runc")
    assert cfg.runtime_shown("crun") == "crun"

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        default = await _create(svc, "true")
        named = await _create(svc, "true", Runtime="runc")
        assert svc.resolve(default).host_config.runtime == "berth"
        assert _inspect(svc, default)["HostConfig"]["Runtime"] == ("berth" if real_runc else "runc")
        assert svc.resolve(named).host_config.runtime == ("runc" if real_runc else "berth")
        assert _inspect(svc, named)["HostConfig"]["Runtime"] == "runc"
        with pytest.raises(InvalidArgument, match="unknown or invalid runtime name: nope"):
            await _create(svc, "true", Runtime="nope")

    _run(tmp_path, scenario, runtimes=runtimes)


def test_a_create_that_fails_leaves_nothing(tmp_path: Path) -> None:
    """Each step of create registers its undo: a failure after the volumes were made takes
    the anonymous volume, the container's directory and its writable layer away again."""

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        def broken(rec: Any, *a: Any, **kw: Any) -> None:
            raise OSError("disk full")

        svc.net.write_etc_files = broken  # type: ignore[method-assign]
        with pytest.raises(OSError, match="disk full"):
            await svc.create(
                create_request(
                    {
                        "Image": "fake",
                        "Cmd": ["true"],
                        "Volumes": {"/data": {}},
                        "HostConfig": {"NetworkMode": "none"},
                    }
                )
            )
        assert svc.volumes.meta.volumes() == [] and svc.list(all_=True) == []
        assert os.listdir(tmp_path / "data" / "containers") == []
        assert os.listdir(tmp_path / "layers") == []

    _run(tmp_path, scenario)


def test_names_rename_and_resolution(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid, _ = await svc.create(
            create_request(
                {"Image": "fake", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
            ),
            "web",
        )
        assert svc.resolve("web").id == svc.resolve("/web").id == svc.resolve(cid[:8]).id
        with pytest.raises(Conflict, match='"/web" is already in use'):
            await svc.create(create_request({"Image": "fake", "Cmd": ["true"]}), "web")
        other = await _create(svc, "true")
        with pytest.raises(Conflict, match="already in use"):
            await svc.rename(other, "web")
        await svc.rename("web", "api")
        assert svc.resolve("api").id == cid and svc.resolve(other).name != "/api"
        with pytest.raises(NotFound):
            svc.resolve("web")
        with pytest.raises(NotFound, match="No such image: nope"):
            await svc.create(create_request({"Image": "nope", "Cmd": ["true"]}))

    events = _run(tmp_path, scenario)
    assert ("rename", events[0][1]) in events


def test_creates_at_once_never_pick_one_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is taken from its pick, not from the record's save: concurrent builds' step
    containers once picked the same random name and one build failed with a conflict."""
    from berth.containers import names

    monkeypatch.setattr(names, "random_name", lambda: "keen_feynman")

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cids = await asyncio.gather(*(_create(svc, "true") for _ in range(4)))
        got = sorted(svc.resolve(c).name for c in cids)
        assert len(set(got)) == 4 and got[0] == "/keen_feynman", got
        # an explicit name asked twice at once: one create has it, the other is refused
        made = await asyncio.gather(
            *(
                svc.create(
                    create_request(
                        {"Image": "fake", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
                    ),
                    "twice",
                )
                for _ in range(2)
            ),
            return_exceptions=True,
        )
        assert sorted(type(m).__name__ for m in made) == ["Conflict", "tuple"]

    _run(tmp_path, scenario)


def test_wait_conditions_and_ps_filters(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        done = await _create(svc, "sh", "-c", "exit 2")
        await svc.start(done)
        assert (await svc.wait(done)).code == 2
        long = await _create(svc, "sleep", "30")
        await svc.start(long)
        running = [v.record.id for v in svc.list()]
        assert running == [long]
        assert [v.record.id for v in svc.list(all_=True, filters={"exited": ["2"]})] == [done]
        assert [v.record.id for v in svc.list(filters={"status": ["exited"]})] == [done]
        with pytest.raises(InvalidArgument, match="invalid filter 'status=nope'"):
            svc.list(filters={"status": ["nope"]})
        assert "Up " in svc.list()[0].status_text
        waiting = asyncio.ensure_future(svc.wait(long, "removed"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await svc.remove(long, force=True)
        assert (await waiting).code == 137
        counts = svc.counts()
        assert (counts["Containers"], counts["ContainersRunning"]) == (1, 0)
        pruned = await svc.prune()
        assert pruned == [done] and svc.list(all_=True) == []

    _run(tmp_path, scenario)


def test_an_exec_runs_with_its_typed_config(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        from berth.containers.execs import ExecConfig, ExecService

        execs = ExecService(svc)
        cid = await _create(svc, "sleep", "30")
        with pytest.raises(Conflict, match="is not running"):
            execs.create(cid, ExecConfig(cmd=("true",)))
        await svc.start(cid)
        with pytest.raises(InvalidArgument, match="No exec command specified"):
            exec_config({"Cmd": []})
        eid = execs.create(
            cid,
            exec_config(
                {"Cmd": ["sh", "-c", "echo $X; exit 5"], "Env": ["X=hi"], "AttachStdout": True}
            ),
        )
        ex = execs.inspect(eid)
        assert (ex.config.cmd, ex.config.env, ex.config.attach_stdout) == (
            ("sh", "-c", "echo $X; exit 5"),
            ("X=hi",),
            True,
        )
        assert svc.resolve(cid).exec_ids == [eid]
        att = execs.attach(eid)
        await execs.start(eid)
        out = b"".join([data async for _, data in att.output()])
        assert out == b"hi\n" and await execs.wait(eid, 10) == 5
        with pytest.raises(Conflict, match="has already run"):
            await execs.start(eid)
        await svc.remove(cid, force=True)

    _run(tmp_path, scenario)


def test_create_merges_the_typed_request_with_the_images_config(tmp_path: Path) -> None:
    """The record's Config is the request's over the image's, as dockerd merges them, and its
    HostConfig has dockerd's defaults filled in."""

    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        svc.images.image.container_config = {  # type: ignore[attr-defined]
            "Env": ["PATH=/bin", "A=image"],
            "User": "daemon",
            "Labels": {"from": "image"},
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
            "WorkingDir": "/srv",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000},
        }
        cid, warnings = await svc.create(
            create_request(
                {
                    "Image": "fake",
                    "Cmd": ["sleep", "1"],
                    "Env": ["A=mine", "B"],
                    "Labels": {"k": "v"},
                    "StopTimeout": 3,
                    "MacAddress": "02:42:ac:11:00:02",
                    "HostConfig": {
                        "NetworkMode": "none",
                        "Memory": 64 << 20,
                        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                    },
                }
            )
        )
        assert warnings == []
        c = svc.resolve(cid).config
        assert c.env == ("A=mine", "B", "PATH=/bin")
        assert (c.user, c.working_dir, c.stop_signal, c.stop_timeout) == (
            "daemon",
            "/srv",
            "SIGQUIT",
            3,
        )
        assert c.labels == {"from": "image", "k": "v"}
        assert c.exposed_ports == (Port(80),)
        assert c.healthcheck == HealthConfig(test=("CMD", "true"), interval=2_000_000_000)
        assert c.mac_address == ""  # no network to give it to
        assert c.hostname == cid[:12] and c.cmd == ("sleep", "1") and c.entrypoint is None
        hc = svc.resolve(cid).host_config
        assert (hc.network_mode, hc.ipc_mode, hc.shm_size, hc.memory_swap) == (
            "none",
            "private",
            64 << 20,
            128 << 20,
        )
        assert hc.log_config == LogConfig(type="json-file", config={})
        assert hc.restart_policy == RestartPolicy(name="on-failure", maximum_retry_count=2)
        assert hc.masked_paths and hc.readonly_paths
        shown = _inspect(svc, cid)
        assert shown["Config"]["ExposedPorts"] == {"80/tcp": {}}
        assert shown["HostConfig"]["RestartPolicy"] == {
            "Name": "on-failure",
            "MaximumRetryCount": 2,
        }
        # the stored record is the typed one, field for field
        stored = next(s for s in svc.meta.containers() if s["id"] == cid)
        assert stored["v"] == VERSION
        back = ContainerRecord.from_stored(json.loads(json.dumps(stored)))
        assert (back.config, back.host_config) == (c, hc)

    _run(tmp_path, scenario)


def test_update_changes_the_typed_host_config(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        cid = await _create(svc, "true", Memory=64 << 20)
        assert svc.resolve(cid).host_config.memory_swap == 128 << 20
        warnings = await svc.update(
            cid, ResourcesUpdate(memory=512 << 20, restart_policy=RestartPolicy(name="always"))
        )
        hc = svc.resolve(cid).host_config
        assert warnings == [] and hc.memory == 512 << 20
        assert hc.memory_swap == 0  # below the new limit: dropped, as dockerd
        assert hc.restart_policy.name == "always"
        with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
            await svc.update(cid, ResourcesUpdate(memory=1 << 20))
        assert svc.resolve(cid).host_config.memory == 512 << 20  # unchanged

    _run(tmp_path, scenario)


def test_a_bad_host_config_changes_nothing(tmp_path: Path) -> None:
    async def scenario(svc: ContainerService, shim: FakeShim) -> None:
        for hc, message in (
            ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy 'sometimes'"),
            (
                {"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
                "can't create 'AutoRemove' container with restart policy",
            ),
            ({"LogConfig": {"Type": "syslog"}}, "no log driver named 'syslog'"),
            ({"CpuCount": 2}, "HostConfig.CpuCount is not supported"),
        ):
            with pytest.raises(InvalidArgument, match=message):
                await _create(svc, "true", **hc)
        assert svc.list(all_=True) == []

    _run(tmp_path, scenario)
