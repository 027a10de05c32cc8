"""The compose-spec's merge rules, for several `-f` files and for `extends`: mappings merge
key by key, some sequences append (unique or not), volumes and devices merge by their target,
everything else is replaced; `!reset` removes and `!override` replaces without merging.

Imports nothing of berth's but `compose.yamlsrc`.
"""

from __future__ import annotations

import copy

from berth.compose.yamlsrc import Override, Reset

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

# service keys whose list form is a mapping (`K=V` items) and which merge as mappings
LIST_MAPS = {
    ("environment",),
    ("labels",),
    ("annotations",),
    ("sysctls",),
    ("extra_hosts",),
    ("build", "args"),
    ("build", "labels"),
    ("build", "extra_hosts"),
    ("deploy", "labels"),
    ("storage_opt",),
    ("logging", "options"),
}
# sequences whose merge appends the new items and drops duplicates
UNIQUE_SEQ = {
    ("cap_add",),
    ("cap_drop",),
    ("configs",),
    ("secrets",),
    ("expose",),
    ("external_links",),
    ("ports",),
    ("security_opt",),
    ("device_cgroup_rules",),
    ("deploy", "placement", "constraints"),
    ("deploy", "placement", "preferences"),
    ("build", "cache_from"),
    ("build", "tags"),
    ("links",),
    ("volumes_from",),
    ("group_add",),
    ("profiles",),
}
# sequences whose merge appends, duplicates kept
APPEND_SEQ = {("dns",), ("dns_search",), ("dns_opt",), ("env_file",), ("tmpfs",)}
# sequences merged as mappings keyed by a target path
BY_TARGET = {("volumes",), ("devices",)}
# values replaced whole
REPLACED = {("command",), ("entrypoint",), ("healthcheck", "test")}


def kv_list_to_map(items: list[Any], sep: str = "=") -> dict[str, Any]:
    """`["A=1", "B"]` → `{"A": "1", "B": None}` (compose's list form of a mapping)."""
    out: dict[str, Any] = {}
    for it in items:
        s = str(it)
        k, eq, v = s.partition(sep)
        out[k] = v if eq else None
    return out


def _extra_hosts_map(items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        s = str(it)
        if "=" in s:
            k, _, v = s.partition("=")
        else:
            k, _, v = s.partition(":")
        out[k.strip()] = v.strip()
    return out


def shape_service(svc: dict[str, Any]) -> dict[str, Any]:
    """A service with its list-or-mapping keys in one shape (mappings), before a merge."""
    s = dict(svc)
    for path in LIST_MAPS:
        container = s
        for k in path[:-1]:
            if not isinstance(container.get(k), dict):
                break
            container[k] = dict(container[k])
            container = container[k]
        else:
            leaf = path[-1]
            if isinstance(container.get(leaf), list):
                conv = _extra_hosts_map if leaf == "extra_hosts" else kv_list_to_map
                container[leaf] = conv(container[leaf])
    if isinstance(s.get("build"), str):
        s["build"] = {"context": s["build"]}
    if isinstance(s.get("depends_on"), list):
        s["depends_on"] = {str(n): {"condition": "service_started"} for n in s["depends_on"]}
    if isinstance(s.get("networks"), list):
        s["networks"] = {str(n): None for n in s["networks"]}
    for k in ("dns", "dns_search", "env_file", "tmpfs"):
        if isinstance(s.get(k), str):
            s[k] = [s[k]]
    return s


def volume_target(item: Any) -> str:
    """The container path a volume or device entry mounts at (its key for merging)."""
    if isinstance(item, dict):
        return str(item.get("target") or item.get("path") or "")
    parts = str(item).split(":")
    if len(parts) == 1:
        return parts[0]
    return parts[1]


def merge(base: Any, over: Any, path: tuple[str, ...] = ()) -> Any:
    """`over` merged onto `base` at `path` (relative to a service), per the compose-spec."""
    if isinstance(over, Override):
        return strip(over.value)
    if isinstance(over, Reset):
        return Reset()
    if path in REPLACED:
        return copy.deepcopy(over)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if isinstance(v, Reset):
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v, (*path, str(k)))
            else:
                out[k] = strip(v)
        return out
    if isinstance(base, list) and isinstance(over, list):
        if path in BY_TARGET:
            by: dict[str, Any] = {volume_target(v): v for v in base}
            for v in over:
                by[volume_target(v)] = strip(v)
            return list(by.values())
        if path in APPEND_SEQ:
            return [*base, *strip(over)]
        if path in UNIQUE_SEQ or path not in REPLACED:
            out_l = list(base)
            for v in strip(over):
                if v not in out_l:
                    out_l.append(v)
            return out_l
    return strip(over)


def strip(value: Any) -> Any:
    """The tree without the merge tags: `!override` unwrapped, `!reset` entries removed."""
    if isinstance(value, Override):
        return strip(value.value)
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip(v) for v in value if not isinstance(v, Reset)]
    return value


def merge_services(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = merge(shape_service(base), shape_service(over))
    assert isinstance(merged, dict)
    return merged


def merge_files(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Two whole compose files (`-f a -f b`): services by the service rules, the other
    sections mapping by mapping."""
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, Reset):
            out.pop(key, None)
        elif key == "services" and isinstance(val, dict) and isinstance(out.get(key), dict):
            services = dict(out[key])
            for name, svc in val.items():
                if isinstance(svc, Reset):
                    services.pop(name, None)
                elif isinstance(svc, Override):
                    services[name] = strip(svc.value)
                elif name in services and isinstance(svc, dict):
                    services[name] = merge_services(services[name], svc)
                else:
                    services[name] = strip(svc)
            out[key] = services
        elif key in out:
            out[key] = merge(out[key], val, ("~top", key))
        else:
            out[key] = strip(val)
    return out
