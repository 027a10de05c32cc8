"""The CNI calling convention (containernetworking/cni SPEC.md), written for berth: find a
network configuration list in a conf dir, run its plug-ins in order for ADD and CHECK (each one
handed the previous one's result as `prevResult`) and in reverse for DEL, with the `CNI_*`
environment and the plug-in's config on stdin, and parse the result.

The result of an ADD is cached (as libcni does under /var/lib/cni) so that DEL and CHECK hand the
plug-ins the same `prevResult`, even after a daemon restart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument, NotFound, System
from berth.fs import atomic_write

log = logging.getLogger(__name__)

# a plug-in that hangs must not hold a pod's start for ever
PLUGIN_TIMEOUT = 60.0
# the versions whose result format (`ips` with `interface` indexes) this parser reads
RESULT_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# a plug-in's output is read as hostile: its result at most this long (a result of dozens of
# interfaces and addresses is a few kB), what it says on stderr cut here, a result's lists
# and strings bounded
STDOUT_MAX = 256 * 1024
STDERR_MAX = 16 * 1024
MESSAGE_MAX = 4096
RESULT_ITEMS_MAX = 64


class CniError(System):
    """A plug-in failed: its error code and message, as it printed them."""

    def __init__(self, plugin: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(
            f"plugin type={plugin!r} failed (code {code}): {msg}"
            + (f": {details}" if details else "")
        )
        self.code = code


@dataclass(frozen=True, slots=True)
class NetworkList:
    """A configuration list: its name, version and the plug-ins' configs, in order."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: str = ""

    def plugin_conf(
        self, plugin: dict[str, Any], prev: dict[str, Any] | None, runtime_config: dict[str, Any]
    ) -> dict[str, Any]:
        """What one plug-in reads on stdin: its config with the list's name and version, the
        previous result, and the runtime's values for the capabilities it declares."""
        conf = dict(plugin)
        conf["name"] = self.name
        conf["cniVersion"] = self.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        wanted = {k: v for k, v in runtime_config.items() if caps.get(k)}
        if wanted:
            conf["runtimeConfig"] = wanted
        return conf


@dataclass(frozen=True, slots=True)
class IPConfig:
    address: str  # CIDR, as the plug-in gave it: 10.251.67.2/24
    gateway: str = ""
    interface: int | None = None

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    def sandbox_ips(self) -> list[str]:
        """The addresses on interfaces inside the sandbox (or on no named interface)."""
        out = []
        for ipc in self.ips:
            idx = ipc.interface
            if idx is None or not (0 <= idx < len(self.interfaces)) or self.interfaces[idx].sandbox:
                out.append(ipc.ip)
        return out


def _text(v: Any, limit: int) -> str:
    return str(v)[:limit] if isinstance(v, str | int) else ""


def _address(v: Any, what: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """A result's address (CIDR), refused where it could not be a pod's: not an address,
    loopback (port forwarding would reach the host's own services), unspecified, multicast."""
    try:
        ifc = ipaddress.ip_interface(v) if isinstance(v, str) and len(v) <= 64 else None
    except ValueError:
        ifc = None
    if ifc is None or "/" not in v:
        raise System(f"CNI result: {what} {str(v)[:64]!r} is not an address/prefix")
    ip = ifc.ip
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        raise System(f"CNI result: {what} {v!r} cannot be a pod's address")
    return ifc


def parse_result(raw: dict[str, Any]) -> Result:
    """A plug-in's success result (0.3.0 and later: `interfaces`, `ips`), checked as hostile:
    lists of at most RESULT_ITEMS_MAX, each address a valid unicast one, strings bounded."""
    if not isinstance(raw, dict):
        raise System("CNI result is not a JSON object")
    version = _text(raw.get("cniVersion") or "", 32)
    lists = {k: raw.get(k) or [] for k in ("interfaces", "ips")}
    for k, v in lists.items():
        if not isinstance(v, list):
            raise System(f"CNI result: `{k}` is not a list")
        if len(v) > RESULT_ITEMS_MAX:
            raise System(f"CNI result: more than {RESULT_ITEMS_MAX} {k}")
    ifaces = tuple(
        Interface(_text(i.get("name"), 15), _text(i.get("mac"), 64), _text(i.get("sandbox"), 4096))
        for i in lists["interfaces"]
        if isinstance(i, dict)
    )
    ips = []
    for ipc in lists["ips"]:
        if not isinstance(ipc, dict) or not isinstance(ipc.get("address"), str):
            continue
        address = str(_address(ipc["address"], "address"))
        gateway = ipc.get("gateway") or ""
        if gateway:
            try:
                gateway = str(ipaddress.ip_address(gateway)) if isinstance(gateway, str) else ""
            except ValueError:
                raise System(f"CNI result: gateway {str(gateway)[:64]!r} is no address") from None
        idx = ipc.get("interface")
        ok = isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < len(ifaces)
        ips.append(IPConfig(address, gateway, idx if ok else None))
    return Result(version, ifaces, tuple(ips), raw)


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise InvalidArgument(f"CNI {what} {name!r} is not a valid name")
    return name


def parse_config(data: bytes, source: str = "") -> NetworkList:
    """A `.conflist` (a list) or a `.conf` (one plug-in, made a list of one)."""
    try:
        j = json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{source}: not JSON: {e}") from None
    if not isinstance(j, dict):
        raise InvalidArgument(f"{source}: not a JSON object")
    name = _check_name(j.get("name"), "network")
    version = str(j.get("cniVersion") or "0.3.1")
    if "plugins" in j:
        plugins = j["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise InvalidArgument(f"{source}: `plugins` is not a non-empty list")
    else:
        plugins = [{k: v for k, v in j.items() if k not in ("name", "cniVersion")}]
    for p in plugins:
        if not isinstance(p, dict):
            raise InvalidArgument(f"{source}: a plug-in config is not an object")
        _check_name(p.get("type"), "plug-in type")
    return NetworkList(name, version, tuple(plugins), source)


def load_conf_dir(conf_dir: str) -> NetworkList:
    """The first valid configuration in lexical order of file name, as kubelets' runtimes pick
    it (`*.conflist`, `*.conf`, `*.json`)."""
    try:
        names = sorted(os.listdir(conf_dir))
    except OSError as e:
        raise NotFound(f"no CNI config: {conf_dir}: {e.strerror}") from None
    for n in names:
        if not n.endswith((".conflist", ".conf", ".json")):
            continue
        path = os.path.join(conf_dir, n)
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
            return parse_config(data, path)
        except (OSError, InvalidArgument) as e:
            log.warning("skipping CNI config %s: %s", path, e)
    raise NotFound(f"no valid CNI config in {conf_dir}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """What a plug-in call is about: the sandbox, its netns and interface, and the runtime's
    values (`CNI_ARGS` pairs; `runtimeConfig` for capabilities such as portMappings)."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    runtime_config: dict[str, Any] = field(default_factory=dict)


def run_plugin(
    argv: list[str], data: bytes, env: dict[str, str], timeout: float
) -> tuple[int, bytes, bytes]:
    """Run a plug-in with `data` on its stdin: its exit status, stdout and stderr. Its output
    is bounded as it is read (more than STDOUT_MAX on stdout is an error, stderr is cut at
    STDERR_MAX), and it (with what it started: a session of its own) is killed after
    `timeout` seconds (subprocess.TimeoutExpired), or at once when its stdout overflows."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    pos = 0
    try:
        with selectors.DefaultSelector() as sel:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
            sel.register(proc.stdout, selectors.EVENT_READ, out)
            sel.register(proc.stderr, selectors.EVENT_READ, err)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in sel.select(left):
                    f = key.fileobj
                    if f is proc.stdin:
                        try:
                            pos += os.write(proc.stdin.fileno(), data[pos : pos + 65536])
                        except BrokenPipeError:
                            pos = len(data)
                        if pos >= len(data):
                            sel.unregister(f)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(f)
                        continue
                    buf: bytearray = key.data
                    if buf is out and len(out) + len(chunk) > STDOUT_MAX:
                        raise System(f"plugin {argv[0]} printed more than {STDOUT_MAX} bytes")
                    buf += chunk[: max(0, STDERR_MAX - len(buf))] if buf is err else chunk
        code = proc.wait(max(0.0, deadline - time.monotonic()))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for f in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                f.close()
    return code, bytes(out), bytes(err)


class Cni:
    """Runs a network list's plug-ins from `bin_dirs`; caches ADD results in `cache_dir`."""

    def __init__(self, conf_dir: str, bin_dirs: list[str], cache_dir: str) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = list(bin_dirs)
        self.cache_dir = cache_dir

    def network(self) -> NetworkList:
        return load_conf_dir(self.conf_dir)

    def _find(self, plugin: str) -> str:
        for d in self.bin_dirs:
            path = os.path.join(d, plugin)
            if os.access(path, os.X_OK):
                return path
        raise NotFound(f"failed to find plugin {plugin!r} in path {self.bin_dirs}")

    def _exec(
        self,
        command: str,
        net: NetworkList,
        plugin: dict[str, Any],
        att: Attachment,
        prev: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        conf = net.plugin_conf(plugin, prev, att.runtime_config)
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args),
            "CNI_PATH": os.pathsep.join(self.bin_dirs),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        typ = str(plugin["type"])
        code, stdout, stderr = run_plugin(
            [self._find(typ)], json.dumps(conf).encode(), env, PLUGIN_TIMEOUT
        )
        if code != 0:
            try:
                err = json.loads(stdout)
            except (ValueError, RecursionError):
                err = {}
            if not isinstance(err, dict):
                err = {}
            errno_ = err.get("code")
            raise CniError(
                typ,
                errno_ if isinstance(errno_, int) and 0 < errno_ < 1 << 31 else code,
                _text(err.get("msg"), MESSAGE_MAX)
                or stderr.decode(errors="replace").strip()[:MESSAGE_MAX]
                or "no message",
                _text(err.get("details"), MESSAGE_MAX),
            )
        if command != "ADD":
            return None
        try:
            out = json.loads(stdout)
        except (ValueError, RecursionError) as e:
            raise System(f"plugin type={typ!r} printed no JSON result: {e}") from None
        if not isinstance(out, dict):
            raise System(f"plugin type={typ!r}: result is not an object")
        return out

    def _cache_path(self, att: Attachment) -> str:
        """Keyed by the sandbox and interface alone: DEL must find it even when the conf dir
        has changed (or emptied) since the ADD."""
        return os.path.join(self.cache_dir, f"{att.container_id}-{att.ifname}.json")

    def add(self, att: Attachment, net: NetworkList | None = None) -> Result:
        """ADD through the list; on a failure (a plug-in's, or a last result that is no
        valid one) the plug-ins done so far are deleted again."""
        net = net or self.network()
        prev: dict[str, Any] | None = None
        try:
            for plugin in net.plugins:
                out = self._exec("ADD", net, plugin, att, prev)
                prev = out if out is not None else prev
            if prev is None:
                raise System(f"CNI network {net.name}: no result")
            result = parse_result(prev)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(att, net, prev)
            raise
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        atomic_write(
            self._cache_path(att),
            json.dumps(
                {
                    "network": net.name,
                    "result": prev,
                    "config": {"cniVersion": net.cni_version, "plugins": list(net.plugins)},
                }
            ).encode(),
        )
        return result

    def _cached(self, att: Attachment) -> tuple[NetworkList | None, dict[str, Any] | None]:
        """The list as it was at ADD and its result (the conf dir may have changed since)."""
        try:
            with open(self._cache_path(att), "rb") as f:
                j = json.loads(f.read(1 << 20))
            c = j["config"]
            return NetworkList(
                _check_name(j["network"], "network"),
                str(c["cniVersion"]),
                tuple(c["plugins"]),
                "cache",
            ), j["result"]
        except (OSError, ValueError, KeyError, TypeError):
            return None, None

    def delete(
        self, att: Attachment, net: NetworkList | None = None, prev: dict[str, Any] | None = None
    ) -> None:
        """DEL through the list in reverse (the list as it was at ADD, with its cached
        result, where there is one). Plug-ins must tolerate a missing netns or an attachment
        already gone; an error is raised only after every plug-in was asked."""
        cached_net, cached = self._cached(att)
        if net is None:
            net = cached_net or self.network()
        if prev is None:
            prev = cached
        first: BaseException | None = None
        for plugin in reversed(net.plugins):
            try:
                self._exec("DEL", net, plugin, att, prev)
            except (System, NotFound, OSError, subprocess.TimeoutExpired) as e:
                log.warning("CNI DEL %s: %s", att.container_id[:12], e)
                first = first or e
        if first is not None:
            raise first
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._cache_path(att))

    def check(self, att: Attachment) -> None:
        """CHECK through the list in order, with the cached ADD result."""
        net, prev = self._cached(att)
        if net is None or prev is None:
            raise NotFound(f"no cached CNI result for {att.container_id[:12]}")
        for plugin in net.plugins:
            self._exec("CHECK", net, plugin, att, prev)


__all__ = [
    "Attachment",
    "Cni",
    "CniError",
    "IPConfig",
    "Interface",
    "NetworkList",
    "Result",
    "load_conf_dir",
    "parse_config",
    "parse_result",
    "run_plugin",
]
