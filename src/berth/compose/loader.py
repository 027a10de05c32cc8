"""Loading a compose project: finding its files, its environment (`.env`, `--env-file`, the
process's), interpolation, validation, `include`, the merge of several files, `extends` and
profiles. The result is the merged tree, which `compose.normalize` turns into the model.

Imports `errors` and the compose modules below it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from berth.compose.interpolate import (
    Interpolator,
    Variable,
    extract_variables,
    interpolate_tree,
    read_env_file,
)
from berth.compose.merge import merge_files, merge_services, shape_service, strip
from berth.compose.yamlsrc import ComposeFileError, Source, parse, read_text, validate

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

    from berth.compose.upcache import Inputs

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}
MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """What the command line and the process say about which project to load."""

    files: tuple[str, ...] = ()
    project_name: str | None = None
    project_directory: str | None = None
    env_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "."
    # services named on the command line: enabled whatever their profiles
    enable: tuple[str, ...] = ()
    # where trees that passed schema validation are remembered (None: validate every time)
    cache_dir: str | None = None
    # False: the files as written (`config --no-interpolate`, `--variables`), their
    # variables collected in `Loaded.variables`
    interpolate: bool = True
    # notes the files read and the variables looked up (for the fast path of `up -d`)
    inputs: Inputs | None = None


@dataclass(slots=True, kw_only=True)
class Loaded:
    """The merged tree of a project, before normalisation."""

    name: str
    working_dir: Path
    config_files: list[Path]
    env: dict[str, str]
    data: dict[str, Any]
    profiles: list[str]
    warnings: list[str] = field(default_factory=list)
    variables: dict[str, Variable] = field(default_factory=dict)


def find_files(opts: LoadOptions) -> list[Path]:
    """`-f` (relative to the cwd), else COMPOSE_FILE, else the first of compose.yaml,
    compose.yml, docker-compose.yaml, docker-compose.yml upward from the cwd (with its
    override file beside it)."""
    cwd = Path(opts.cwd).absolute()
    if opts.files:
        return [Path(os.path.normpath(cwd / f)) for f in opts.files]
    env_files = opts.environ.get("COMPOSE_FILE")
    if env_files:
        sep = opts.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [Path(os.path.normpath(cwd / f)) for f in env_files.split(sep) if f]
    start = Path(opts.project_directory).absolute() if opts.project_directory else cwd
    d = start
    while True:
        for name in DEFAULT_FILES:
            p = d / name
            if p.is_file():
                found = [p]
                for o in OVERRIDE_FILES[name]:
                    if (d / o).is_file():
                        found.append(d / o)
                        break
                    if opts.inputs is not None:
                        opts.inputs.file(d / o, None)  # one made later is found then
                return found
            if opts.inputs is not None:
                opts.inputs.file(p, None)
        if d.parent == d:
            break
        d = d.parent
    raise ComposeFileError("no configuration file provided: not found")


def normalize_project_name(name: str) -> str:
    """Compose's rule: lowercase, only [a-z0-9_-], starting with a letter or digit."""
    s = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return s.lstrip("_-")


def _check_project_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ComposeFileError(
            f'invalid project name "{name}": must consist only of lowercase alphanumeric '
            "characters, hyphens, and underscores as well as start with a letter or number"
        )
    return name


def load_env(
    project_dir: Path,
    env_files: tuple[str, ...],
    cwd: Path,
    environ: Mapping[str, str],
    inputs: Inputs | None = None,
) -> dict[str, str]:
    """The variables for interpolation: the `.env` file (or `--env-file`s, in order) under the
    process's environment, which wins."""
    dotenv: dict[str, str] = {}
    paths = [Path(os.path.normpath(cwd / f)) for f in env_files]
    if not paths and (project_dir / ".env").is_file():
        paths = [project_dir / ".env"]
    elif not paths and inputs is not None:
        inputs.file(project_dir / ".env", None)
    for p in paths:
        if not p.is_file():
            raise ComposeFileError(f"couldn't find env file: {p}")

        def lookup(k: str) -> str | None:
            if inputs is not None:
                inputs.var(k)
            return environ.get(k, dotenv.get(k))

        for k, v in read_env_file(p, lookup, inputs).items():
            if inputs is not None:
                inputs.var(k)
            if v is not None:
                dotenv[k] = v
            elif k in environ:
                dotenv[k] = environ[k]
    return {**dotenv, **environ}


class _NotedEnv(dict[str, str]):
    """The variables, noting in `inputs` each one looked up (set or not)."""

    def __init__(self, env: dict[str, str], inputs: Inputs) -> None:
        super().__init__(env)
        self.inputs = inputs

    def get(self, key: str, default: Any = None) -> Any:
        self.inputs.var(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.inputs.var(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.inputs.var(key)
        return super().__contains__(key)


class _Context:
    """One load: the variables and the warnings, and files seen (for include cycles)."""

    def __init__(
        self,
        env: dict[str, str],
        cache_dir: Path | None = None,
        interpolate: bool = True,
        inputs: Inputs | None = None,
    ) -> None:
        self.env = env
        self.inputs = inputs
        self.cache_dir = cache_dir
        self.interp = Interpolator(env)
        self.interpolate = interpolate
        self.variables: dict[str, Variable] = {}
        self.warnings: list[str] = []

    def read(self, path: Path) -> tuple[Source, dict[str, Any]]:
        if self.inputs is not None:
            text = read_text(path)
            self.inputs.file(path, text.encode())
            src = parse(path, text)
        else:
            src = parse(path)
        if self.interpolate:
            data = interpolate_tree(src.data, self.interp)
        else:
            data = src.data
            extract_variables(data, self.variables)
        if not isinstance(data, dict):
            raise ComposeFileError(f"{path}: top-level object must be a mapping")
        validate(src, data, self.cache_dir)
        if "version" in data:
            self.warnings.append(
                f"{path}: the attribute `version` is obsolete, it will be "
                "ignored, please remove it to avoid potential confusion"
            )
        return src, data


def _is_url(s: str) -> bool:
    return "://" in s or s.startswith(("git@", "github.com/"))


def _abs(base: Path, p: str) -> str:
    if p.startswith("~"):
        return os.path.expanduser(p)
    if _is_url(p) or os.path.isabs(p):
        return p
    return os.path.normpath(base / p)


def rebase_service(svc: dict[str, Any], base: Path) -> dict[str, Any]:
    """A service's relative paths (build context, env_file, bind sources, extends.file) made
    absolute against `base`: for services that come from another directory's file."""
    s = shape_service(svc)
    if isinstance(s.get("build"), dict) and isinstance(s["build"].get("context"), str):
        s["build"] = {**s["build"], "context": _abs(base, s["build"]["context"])}
    if isinstance(s.get("build"), dict) and "context" not in s["build"]:
        s["build"] = {**s["build"], "context": str(base)}
    if isinstance(s.get("env_file"), list):
        s["env_file"] = [
            _abs(base, e)
            if isinstance(e, str)
            else {**e, "path": _abs(base, str(e.get("path", "")))}
            for e in s["env_file"]
        ]
    if isinstance(s.get("label_file"), str):
        s["label_file"] = _abs(base, s["label_file"])
    elif isinstance(s.get("label_file"), list):
        s["label_file"] = [_abs(base, str(x)) for x in s["label_file"]]
    if isinstance(s.get("extends"), dict) and isinstance(s["extends"].get("file"), str):
        s["extends"] = {**s["extends"], "file": _abs(base, s["extends"]["file"])}
    develop = s.get("develop")
    if isinstance(develop, dict) and isinstance(develop.get("watch"), list):
        s["develop"] = {
            **develop,
            "watch": [
                {**r, "path": _abs(base, str(r["path"]))}
                if isinstance(r, dict) and isinstance(r.get("path"), str)
                else r
                for r in develop["watch"]
            ],
        }
    if isinstance(s.get("volumes"), list):
        vols: list[Any] = []
        for v in s["volumes"]:
            if isinstance(v, str):
                parts = v.split(":")
                if len(parts) >= 2 and parts[0][:1] in (".", "~"):
                    parts[0] = _abs(base, parts[0])
                vols.append(":".join(parts))
            elif (
                isinstance(v, dict) and v.get("type") == "bind" and isinstance(v.get("source"), str)
            ):
                vols.append({**v, "source": _abs(base, v["source"])})
            else:
                vols.append(v)
        s["volumes"] = vols
    return s


def _rebase_top(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(data)
    if isinstance(out.get("services"), dict):
        out["services"] = {
            n: rebase_service(s, base) if isinstance(s, dict) else s
            for n, s in out["services"].items()
        }
    for sect in ("secrets", "configs"):
        if isinstance(out.get(sect), dict):
            out[sect] = {
                n: (
                    {**d, "file": _abs(base, d["file"])}
                    if isinstance(d, dict) and isinstance(d.get("file"), str)
                    else d
                )
                for n, d in out[sect].items()
            }
    return out


def _include(
    ctx: _Context, src: Source, data: dict[str, Any], depth: int, seen: tuple[Path, ...]
) -> dict[str, Any]:
    """The file's `include`s loaded (each as a project of its own, its paths made absolute)
    and added to it; a resource both define is an error."""
    entries = data.pop("include", None) or []
    if depth > MAX_INCLUDE_DEPTH:
        raise ComposeFileError(f"{src.path}: include nested deeper than {MAX_INCLUDE_DEPTH}")
    base = src.path.parent
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"path": entry}
        paths = entry.get("path")
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        files = [Path(_abs(base, p)) for p in paths]
        if not files:
            raise ComposeFileError(f"{src.where(('include', str(i)))}: include has no path")
        for f in files:
            if f in seen:
                raise ComposeFileError(
                    f"{src.where(('include', str(i)))}: include cycle through {f}"
                )
        pdir = (
            Path(_abs(base, entry["project_directory"]))
            if entry.get("project_directory")
            else files[0].parent
        )
        env_files = entry.get("env_file")
        env_files = [env_files] if isinstance(env_files, str) else list(env_files or [])
        sub_env = load_env(pdir, tuple(_abs(base, e) for e in env_files), base, ctx.env, ctx.inputs)
        if ctx.inputs is not None:
            sub_env = _NotedEnv(sub_env, ctx.inputs)
        sub = _Context(sub_env, ctx.cache_dir, ctx.interpolate, ctx.inputs)
        sub.variables = ctx.variables
        merged: dict[str, Any] = {}
        for f in files:
            fsrc, fdata = sub.read(f)
            fdata = _include(sub, fsrc, fdata, depth + 1, (*seen, f))
            merged = merge_files(merged, fdata) if merged else strip(fdata)
        merged = resolve_extends(merged, pdir, sub)
        ctx.warnings.extend(sub.warnings)
        merged = _rebase_top(merged, pdir)
        for sect in ("services", "networks", "volumes", "secrets", "configs"):
            imported = merged.get(sect) or {}
            if not imported:
                continue
            mine = dict(data.get(sect) or {})
            for name, val in imported.items():
                if name in mine:
                    raise ComposeFileError(
                        f"{src.where((sect, name))}: {sect}.{name} conflicts with imported "
                        f"resource from {files[0]}"
                    )
                mine[name] = val
            data[sect] = mine
    return data


def resolve_extends(data: dict[str, Any], base: Path, ctx: _Context) -> dict[str, Any]:
    """Every service's `extends` merged in, recursively; cycles are an error."""
    services = data.get("services")
    if not isinstance(services, dict):
        return data
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}

    def resolve(
        name: str, pool: dict[str, Any], where: str, stack: tuple[tuple[str, str], ...]
    ) -> dict[str, Any]:
        key = (where, name)
        if key in cache:
            return cache[key]
        if key in stack:
            chain = " -> ".join(n for _, n in (*stack, key))
            raise ComposeFileError(f"circular reference with extends: {chain}")
        svc = pool.get(name)
        if not isinstance(svc, dict):
            raise ComposeFileError(f"cannot extend service {name!r} in {where}: service not found")
        ext = svc.get("extends")
        if ext is None:
            cache[key] = svc
            return svc
        if isinstance(ext, str):
            ext = {"service": ext}
        target = str(ext["service"])
        if ext.get("file"):
            fpath = Path(_abs(base if where == "" else Path(where).parent, str(ext["file"])))
            if str(fpath) not in files:
                _, fdata = ctx.read(fpath)
                files[str(fpath)] = _rebase_top(fdata, fpath.parent)
            other_pool = files[str(fpath)].get("services") or {}
            parent = resolve(target, other_pool, str(fpath), (*stack, key))
        else:
            parent = resolve(target, pool, where, (*stack, key))
        own = {k: v for k, v in svc.items() if k != "extends"}
        hc_p, hc_o = parent.get("healthcheck"), own.get("healthcheck")
        if (
            isinstance(hc_o, dict)
            and hc_o.get("disable")
            and not (isinstance(hc_p, dict) and hc_p.get("disable"))
            and isinstance(hc_p, dict)
        ):
            raise ComposeFileError(
                f"service {name!r}: healthcheck.disable cannot be set when "
                f"the extended service {target!r} has a healthcheck"
            )
        merged = merge_services({k: v for k, v in parent.items() if k != "extends"}, own)
        cache[key] = merged
        return merged

    out = {
        n: resolve(n, services, "", ()) if isinstance(s, dict) else s for n, s in services.items()
    }
    return {**data, "services": out}


def active_profiles(opts: LoadOptions, env: Mapping[str, str]) -> list[str]:
    if opts.profiles:
        return [p for ps in opts.profiles for p in ps.split(",") if p]
    return [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]


def apply_profiles(
    data: dict[str, Any], profiles: list[str], enable: tuple[str, ...]
) -> dict[str, Any]:
    """Services whose profiles are not active are left out; a service named on the command
    line is enabled, and so are the services it depends on."""
    services: dict[str, Any] = data.get("services") or {}
    wanted = set(profiles)

    def active(svc: dict[str, Any]) -> bool:
        ps = svc.get("profiles") or []
        return not ps or "*" in wanted or bool(wanted & set(ps))

    keep = {n for n, s in services.items() if active(s)}
    todo = [n for n in enable if n in services]
    while todo:
        n = todo.pop()
        if n in keep and n not in enable:
            continue
        keep.add(n)
        deps = services[n].get("depends_on") or {}
        todo.extend(d for d in deps if d in services and d not in keep)
    return {**data, "services": {n: s for n, s in services.items() if n in keep}}


def load(opts: LoadOptions) -> Loaded:
    """The merged, interpolated, validated tree of the project `opts` names."""
    cwd = Path(opts.cwd).absolute()
    files = find_files(opts)
    for f in files:
        if not f.is_file():
            raise ComposeFileError(f"open {f}: no such file or directory")
    project_dir = (
        Path(os.path.normpath(cwd / opts.project_directory))
        if opts.project_directory
        else files[0].parent
    )
    env = load_env(project_dir, opts.env_files, cwd, opts.environ, opts.inputs)
    if opts.inputs is not None:
        env = _NotedEnv(env, opts.inputs)
    ctx = _Context(
        env, Path(opts.cache_dir) if opts.cache_dir else None, opts.interpolate, opts.inputs
    )
    merged: dict[str, Any] = {}
    for f in files:
        src, data = ctx.read(f)
        data = _include(ctx, src, data, 0, (f,))
        merged = merge_files(merged, data) if merged else strip(data)
    merged = resolve_extends(merged, project_dir, ctx)
    profiles = active_profiles(opts, env)
    merged = apply_profiles(merged, profiles, opts.enable)
    if opts.project_name:
        name = _check_project_name(opts.project_name)
    elif env.get("COMPOSE_PROJECT_NAME"):
        name = _check_project_name(env["COMPOSE_PROJECT_NAME"])
    elif isinstance(merged.get("name"), str) and merged["name"]:
        name = _check_project_name(merged["name"])
    else:
        name = normalize_project_name(project_dir.name)
        if not name:
            raise ComposeFileError(f"project name derived from {project_dir} is empty: use -p")
    warnings = list(ctx.warnings)
    for var in ctx.interp.missing:
        warnings.append(f'The "{var}" variable is not set. Defaulting to a blank string.')
    return Loaded(
        name=name,
        working_dir=project_dir,
        config_files=files,
        env=env,
        data=merged,
        profiles=profiles,
        warnings=warnings,
        variables=ctx.variables,
    )
