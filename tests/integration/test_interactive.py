"""Interactive use: stdin, a real pty, resize, detach keys, attach and exec; through berth's
CLI, the real docker CLI and docker-py."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import termios
import time

import pytest

from .conftest import BIN, Daemon

pytestmark = pytest.mark.root


class Term:
    """A program on a pseudo-terminal of the test's own, with a set window size."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.master, self.slave = pty.openpty()
        import fcntl
        import struct

        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.attrs = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(
            argv,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=env,
            start_new_session=True,
        )
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        deadline = time.time() + timeout
        while needle not in self.out:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.out!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return self.out

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.time() + timeout
        while self.proc.poll() is None:
            if time.time() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the client did not exit; it showed {self.out!r}")
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    pass
        # what the client wrote just before it exited is still in the terminal: read it all
        # (the test holds the other end, so no EOF comes: stop when nothing is left)
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.out += chunk
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_stdin_is_forwarded_and_closed(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "-i", "busybox", "cat", input=b"hi\nthere\n")
    assert (r.returncode, r.stdout) == (0, b"hi\nthere\n")
    r = daemon.berth(
        "run", "--rm", "-i", "busybox", "sh", "-c", "wc -c; echo err >&2", input=b"x" * 100000
    )
    assert r.stdout.strip() == b"100000" and r.stderr == b"err\n"


def test_run_it_gets_a_real_tty(daemon: Daemon) -> None:
    t = Term(
        [
            str(BIN / "berth"),
            "run",
            "-it",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "tty; stty size; echo TERM=$TERM; exit 7",
        ],
        daemon.env,
        rows=33,
        cols=101,
    )
    try:
        assert t.wait() == 7
        assert b"/dev/pts/0" in t.out and b"33 101" in t.out and b"TERM=xterm" in t.out
        # the client's terminal is restored on the way out
        assert termios.tcgetattr(t.slave) == t.attrs
    finally:
        t.close()


def test_interactive_shell_and_detach_keys(daemon: Daemon) -> None:
    t = Term([str(BIN / "berth"), "run", "-it", "--name", "shell", "busybox", "sh"], daemon.env)
    try:
        t.read_until(b"# ")
        t.write(b"echo $((6*7))\r")
        t.read_until(b"42")
        t.write(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.wait() == 0
        assert b"read escape sequence" in t.out
        assert termios.tcgetattr(t.slave) == t.attrs
    finally:
        t.close()
    assert daemon.inspect("shell")["State"]["Running"]
    # attach again, with other detach keys, and leave by ending the shell
    t = Term([str(BIN / "berth"), "attach", "--detach-keys", "ctrl-x", "shell"], daemon.env)
    try:
        time.sleep(0.5)
        t.write(b"exit 5\r")
        assert t.wait() == 5
    finally:
        t.close()
    assert daemon.inspect("shell")["State"]["ExitCode"] == 5
    daemon.ok("rm", "shell")


def test_bad_detach_keys(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "--detach-keys", "ctrl-1", "busybox", "true")
    assert r.returncode == 125 and "Invalid detach keys (ctrl-1) provided" in r.stderr


def test_exec(daemon: Daemon) -> None:
    daemon.ok("run", "-d", "--name", "ex", "-h", "exhost", "-m", "32m", "busybox", "sleep", "60")
    try:
        out = daemon.ok(
            "exec",
            "ex",
            "sh",
            "-c",
            "hostname; ps -o pid,args | head -2 | tail -1; cat /proc/self/cgroup",
        )
        lines = out.splitlines()
        # the container's pid namespace: its init is PID 1
        assert lines[0] == "exhost" and lines[1].split() == ["1", "sleep", "60"]
        cid = daemon.inspect("ex")["Id"]
        # every hierarchy, the unified one of a hybrid layout too ("0::", placed by clone3)
        assert lines[2:] and all(line.endswith(f"/{cid}") for line in lines[2:]), lines
        with open(f"/proc/{daemon.inspect('ex')['State']['Pid']}/cgroup") as f:
            assert all(line.rstrip().endswith(f"/{cid}") for line in f)
        r = daemon.berth("exec", "ex", "sh", "-c", "exit 9")
        assert r.returncode == 9
        r = daemon.berth("exec", "-i", "ex", "cat", input=b"fed\n")
        assert r.stdout == b"fed\n"
        out = daemon.ok(
            "exec",
            "-u",
            "app",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $X $HOME",
        )
        assert out.split("\n")[:3] == ["1000", "/tmp", "1 /home/app"]
        r = daemon.berth("exec", "ex", "no-such-binary")
        assert r.returncode == 126
        assert 'exec: "no-such-binary": executable file not found in $PATH' in r.stdout
        t = Term(
            [str(BIN / "berth"), "exec", "-it", "ex", "sh", "-c", "tty; stty size"],
            daemon.env,
            rows=20,
            cols=70,
        )
        try:
            assert t.wait() == 0 and b"20 70" in t.out and b"/dev/pts/" in t.out
        finally:
            t.close()
        daemon.ok("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d")
        time.sleep(0.3)
        assert daemon.ok("exec", "ex", "cat", "/tmp/d") == "detached\n"
    finally:
        daemon.ok("rm", "-f", "ex")
    r = daemon.berth("exec", "ex", "true")
    assert r.returncode == 1 and "No such container: ex" in r.stderr


def test_exec_and_attach_on_stopped_containers(daemon: Daemon) -> None:
    daemon.ok("run", "--name", "stopped", "busybox", "true")
    r = daemon.berth("exec", "stopped", "true")
    assert r.returncode == 1 and "is not running" in r.stderr
    r = daemon.berth("attach", "stopped")
    assert r.returncode == 1 and "You cannot attach to a stopped container" in r.stderr
    daemon.ok("rm", "stopped")


def test_clients_that_hang_up_do_no_harm(daemon: Daemon) -> None:
    daemon.ok(
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.05; done",
    )
    try:
        for args in (["logs", "-f", "chatty"], ["attach", "chatty"]):
            p = subprocess.Popen(
                [str(BIN / "berth"), *args],
                env=daemon.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert p.stdout is not None
            p.stdout.read(5)
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.stdout.close()
        time.sleep(0.3)
        assert daemon.inspect("chatty")["State"]["Running"]
        assert daemon.ok("exec", "chatty", "echo", "alive") == "alive\n"
    finally:
        daemon.ok("rm", "-f", "chatty")


@pytest.mark.docker_cli
def test_docker_cli_interactive(daemon: Daemon) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "docker-config")}
    r = subprocess.run(
        [docker, "run", "--rm", "-i", "busybox", "cat"],
        input=b"x\n",
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert (r.returncode, r.stdout) == (0, b"x\n")
    t = Term(
        [docker, "run", "-it", "--rm", "busybox", "sh", "-c", "stty size; exit 4"],
        env,
        rows=21,
        cols=77,
    )
    try:
        assert t.wait() == 4 and b"21 77" in t.out
    finally:
        t.close()
    subprocess.run(
        [docker, "run", "-d", "--name", "dk-ex", "busybox", "sleep", "60"],
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        r = subprocess.run(
            [docker, "exec", "-i", "dk-ex", "sh", "-c", "cat; exit 3"],
            input=b"via exec\n",
            env=env,
            capture_output=True,
            timeout=30,
        )
        assert (r.returncode, r.stdout) == (3, b"via exec\n")
        t = Term([docker, "exec", "-it", "dk-ex", "sh", "-c", "tty"], env)
        try:
            assert t.wait() == 0 and b"/dev/pts/" in t.out
        finally:
            t.close()
    finally:
        subprocess.run([docker, "rm", "-f", "dk-ex"], env=env, capture_output=True)


# docker-py leaves the connections of hijacked streams to the garbage collector
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_docker_py_streams(daemon: Daemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        c = client.containers.run(
            "busybox", ["sh", "-c", "read x; echo got $x; echo e >&2"], stdin_open=True, detach=True
        )
        sock = client.api.attach_socket(
            c.id, params={"stdin": 1, "stream": 1, "stdout": 1, "stderr": 1}
        )
        sock._sock.sendall(b"line\n")
        data = b""
        deadline = time.time() + 10
        while b"e\n" not in data and time.time() < deadline:
            chunk = sock._sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"got line" in data
        sock.close()
        assert c.wait(timeout=10)["StatusCode"] == 0
        c.remove()
        c = client.containers.run("busybox", ["sleep", "60"], detach=True)
        eid = client.api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2; exit 2"])["Id"]
        out, err = b"", b""
        for o, e in client.api.exec_start(eid, stream=True, demux=True):
            out += o or b""
            err += e or b""
        assert (out, err) == (b"out\n", b"err\n")
        assert client.api.exec_inspect(eid)["ExitCode"] == 2
        eid = client.api.exec_create(c.id, ["cat"], stdin=True)["Id"]
        s = client.api.exec_start(eid, socket=True)
        s._sock.sendall(b"sock\n")
        s._sock.shutdown(1)
        got = b""
        while True:
            chunk = s._sock.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        assert got.endswith(b"sock\n")  # one stdout frame: 8-byte header, then the data
        with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
            client.api.exec_resize("nonexistent", height=10, width=10)
        c.remove(force=True)
    finally:
        client.close()


def test_attach_json_api_shapes(daemon: Daemon) -> None:
    """exec inspect carries what clients read."""
    daemon.ok("run", "-d", "--name", "shape", "busybox", "sleep", "30")
    try:
        from berth.client import Client

        c = Client(daemon.host)
        eid = c.post("/containers/shape/exec", body={"Cmd": ["true"], "AttachStdout": True})["Id"]
        info = c.get(f"/exec/{eid}/json")
        assert info["Running"] is False and info["ExitCode"] is None
        assert info["ProcessConfig"]["entrypoint"] == "true"
        assert json.loads(json.dumps(info))["ContainerID"] == daemon.inspect("shape")["Id"]
    finally:
        daemon.ok("rm", "-f", "shape")


def test_exec_helper_is_not_reachable_from_the_container(daemon: Daemon) -> None:
    """While an exec is being set up it runs the host's interpreter: a container process must
    not be able to open it through /proc/PID/exe (CVE-2019-5736). After execve, the program is
    the container's own."""
    daemon.ok("run", "-d", "--name", "cve", "busybox", "sleep", "60")
    try:
        out = daemon.ok(
            "exec",
            "cve",
            "sh",
            "-c",
            "readlink /proc/self/exe; cat /proc/self/status | grep -c ^Name",
        )
        assert out.splitlines()[0] == "/bin/busybox"
    finally:
        daemon.ok("rm", "-f", "cve")


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_exec_tty_without_stdin_gets_a_pty(daemon: Daemon) -> None:
    """docker-py's exec_run(tty=True) and exec_start(tty=False) of a tty exec: the pty comes
    from the exec's create, as with dockerd (so the output has the pty's \\r\\n)."""
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        assert c.exec_run("echo hi", tty=True).output == b"hi\r\n"
        assert c.exec_run("tty", tty=True).output.startswith(b"/dev/pts/")
        eid = client.api.exec_create(c.id, "echo hi", tty=True)["Id"]
        assert client.api.exec_start(eid, tty=False) == b"hi\r\n"  # framed, from a pty
        assert c.exec_run("echo hi").output == b"hi\n"
    finally:
        c.remove(force=True)
        client.close()


def test_start_attach_runs_again(daemon: Daemon) -> None:
    """`start -a` attaches, then starts: it works for a container that already ran, as with
    dockerd (the daemon refused to attach to a stopped container)."""
    daemon.ok("create", "--name", "again", "busybox", "echo", "hello")
    try:
        for _ in range(3):
            assert daemon.ok("start", "-a", "again") == "hello\n"
        if not shutil.which("docker"):
            return
        r = subprocess.run(
            ["docker", "start", "-a", "again"],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    finally:
        daemon.ok("rm", "-f", "again")


def test_attach_over_a_websocket(daemon: Daemon) -> None:
    """GET /containers/{id}/attach/ws (browser consoles): output as raw binary messages, each
    message sent is the process's input, as with dockerd."""
    import asyncio

    import aiohttp

    cid = daemon.ok(
        "run",
        "-d",
        "-i",
        "busybox",
        "sh",
        "-c",
        "echo ready; read line; echo got $line; echo err >&2",
    ).strip()

    async def go() -> bytes:
        conn = aiohttp.UnixConnector(path=str(daemon.sock))
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.ws_connect(
                f"http://localhost/v1.50/containers/{cid}/attach/ws"
                "?stream=1&stdin=1&stdout=1&stderr=1&logs=1"
            ) as ws:
                got = b""
                while b"ready" not in got:
                    got += await asyncio.wait_for(ws.receive_bytes(), 10)
                await ws.send_bytes(b"hello\n")
                while b"err" not in got:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    got += msg.data
                return got

    try:
        out = asyncio.run(go())
        assert out.replace(b"\r", b"") == b"ready\ngot hello\nerr\n", out
    finally:
        daemon.ok("rm", "-f", cid)


def test_a_detached_tty_needs_no_terminal(daemon: Daemon) -> None:
    """As the docker CLI: `run -dit` and `exec -dit` attach nothing, so they work without a
    terminal; `run -it` needs one."""
    r = daemon.berth(
        "run", "-dit", "--name", "dit", "--network", "none", "busybox", "sh", input=b""
    )
    assert r.returncode == 0, r.stderr
    r = daemon.berth("exec", "-dit", "dit", "true", input=b"")
    assert r.returncode == 0, r.stderr
    r = daemon.berth("run", "-it", "--rm", "busybox", "true", input=b"")
    assert r.returncode == 1 and b"the input device is not a TTY" in r.stderr
    daemon.ok("rm", "-f", "dit")
