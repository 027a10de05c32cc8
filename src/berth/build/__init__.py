"""The Dockerfile builder behind `/build` (the classic builder's API), `commit` and `diff`.

Imports `images`, `containers`, `storage`, `metadata`, `reference`, `errors`. The Dockerfile is
parsed by BuildKit's own parser (the `dockerfile` package); words are expanded by a lexer that
follows BuildKit's (build/shell.py). Each step makes an image, as the classic builder does; RUN
steps run in a container of the containers service and their changes become a layer; COPY and
ADD write their layer directly from the context. A step reuses the image of an earlier build
with the same parent and the same instruction, build args and (for COPY and ADD) the same
content and metadata of the files it copies, whatever their mtime. A step that misses the cache
says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth import reference, storage
from berth.build.context import DirTree, LayersTree, TarContext, Tree, resolve
from berth.build.shell import Lexer
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.images import ImageService, host_arch, rfc3339

log = logging.getLogger(__name__)

Message = dict[str, Any]
PROXY_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
EXPANDED = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
            "WORKDIR", "ARG"}
KNOWN = EXPANDED | {"RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER"}
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# what the runtime makes in a container's upper directory as mount points
RUNTIME_STUBS = {"etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys",
                 ".dockerenv"}
# BuildKit's RUN --network modes; anything else (container:ID, a named network) is refused
RUN_NETWORKS = ("default", "none", "host")
# BuildKit's entitlements that berth's builder knows; only network.host does anything here
NETWORK_HOST = "network.host"
ENTITLEMENTS = (NETWORK_HOST,)


def check_entitlements(names: list[str]) -> list[str]:
    """Entitlement names as `--allow` and `--allow-insecure-entitlement` give them."""
    for n in names:
        if n == "security.insecure":
            raise InvalidArgument("entitlement security.insecure is not supported: berth's "
                                  "builder has no RUN --security=insecure")
        if n not in ENTITLEMENTS:
            raise InvalidArgument(f"unknown entitlement {n!r} (berth knows {NETWORK_HOST})")
    return sorted(set(names))


class BuildError(BerthError):
    """A failed step. `code` is a RUN's exit status, for errorDetail."""

    status = 400

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Options:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    nocache: bool = False
    pull: bool = False
    quiet: bool = False
    cachefrom: list[str] = field(default_factory=list)
    network: str = ""
    platform: str = ""
    rm: bool = True
    forcerm: bool = False
    secrets: dict[str, bytes] = field(default_factory=dict)
    registry_auth: dict[str, Any] = field(default_factory=dict)
    # entitlements the client asks for (`berth build --allow network.host`); a RUN step gets
    # one only if the daemon grants it too (Builder.entitlements)
    allow: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Instruction:
    cmd: str
    flags: dict[str, str]
    args: list[str]
    json: bool
    original: str
    line: int
    heredocs: list[tuple[str, str]]  # (name, content)


@dataclass(slots=True)
class Stage:
    index: int
    name: str
    base: str
    platform: str
    line: int
    steps: list[Instruction] = field(default_factory=list)


@dataclass(slots=True)
class State:
    """Where a stage is: the image of its last step (None on scratch before any step)."""

    image_id: str | None
    config: dict[str, Any]          # the whole image config (architecture, config, history...)
    layers: list[str]               # chain IDs
    cmd_set: bool = False           # a CMD in this stage (ENTRYPOINT then keeps it)
    amended: str = ""               # what the builder changed in the config of image_id

    @property
    def cfg(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.config.setdefault("config", {})
        return cfg

    @property
    def parent_key(self) -> str:
        base = self.image_id or f"scratch:{self.config.get('os')}/{self.config.get('architecture')}"
        return base + self.amended


# --- parsing -------------------------------------------------------------------------------------
def parse(text: str, filename: str = "Dockerfile") -> tuple[list[Instruction], str]:
    """Instructions and the escape character; errors name the file and line."""
    import dockerfile
    escape = "\\"
    for line in text.splitlines():
        m = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
            if escape not in ("\\", "`"):
                raise InvalidArgument(f"{filename}:1: invalid escape token '{escape}': does not "
                                      "validate as one of [\\ `]")
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        raise InvalidArgument(f"{filename}: dockerfile parse error: {e}") from None
    out = []
    for c in cmds:
        name = c.cmd.upper()
        if name not in KNOWN and name != "FROM":
            raise InvalidArgument(f"{filename}:{c.start_line}: dockerfile parse error on line "
                                  f"{c.start_line}: unknown instruction: {c.cmd}")
        flags: dict[str, str] = {}
        for f in c.flags:
            k, eq, v = f.lstrip("-").partition("=")
            if k == "network" and name == "RUN" and (not eq or v not in RUN_NETWORKS):
                # as BuildKit's parser: container:ID or a named network is no RUN option
                raise InvalidArgument(
                    f"{filename}:{c.start_line}: invalid network mode {json.dumps(v if eq else '')}"
                    f": RUN --network takes {', '.join(RUN_NETWORKS)}")
            if k == "mount":
                flags.setdefault("mount", "")
                flags["mount"] += ("\n" if flags["mount"] else "") + v
            else:
                flags[k] = v if eq else "true"
        args = list(c.value)
        if name == "ONBUILD":
            args = [c.original.split(None, 1)[1] if len(c.original.split(None, 1)) > 1 else ""]
        out.append(Instruction(name, flags, args, c.json, c.original, c.start_line,
                               [(h.name, h.content) for h in c.heredocs]))
    if not out:
        raise InvalidArgument(f"{filename}: the Dockerfile cannot be empty")
    return out, escape


def stages_of(instructions: list[Instruction], filename: str
              ) -> tuple[list[Instruction], list[Stage]]:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            a = ins.args
            if not a or not a[0]:
                raise InvalidArgument(f"{filename}:{ins.line}: FROM requires an image name")
            name = ""
            if len(a) == 3 and a[1].upper() == "AS":
                name = a[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
                    raise InvalidArgument(f"{filename}:{ins.line}: invalid name for build stage: "
                                          f"\"{a[2]}\", name can't start with a number or "
                                          "contain symbols")
            elif len(a) != 1:
                raise InvalidArgument(f"{filename}:{ins.line}: FROM requires either one or "
                                      "three arguments")
            stages.append(Stage(len(stages), name, a[0], ins.flags.get("platform", ""), ins.line))
        elif not stages:
            if ins.cmd != "ARG":
                raise InvalidArgument(f"{filename}:{ins.line}: no build stage in current context "
                                      f"({ins.cmd} before FROM)")
            meta.append(ins)
        else:
            stages[-1].steps.append(ins)
    if not stages:
        raise InvalidArgument(f"{filename}: no build stage in current context")
    return meta, stages


# --- the builder -----------------------------------------------------------------------------------
class Builder:
    def __init__(self, images: ImageService, containers: Any, *, data_root: str,
                 pull: Callable[..., AsyncIterator[Message]] | None = None,
                 entitlements: frozenset[str] = frozenset()) -> None:
        self.images = images
        # what the daemon may grant (berthd --allow-insecure-entitlement), as buildkitd
        self.entitlements = entitlements
        self.containers = containers
        self.meta = images.meta
        self.pull = pull
        self.cache_mounts = os.path.join(data_root, "build", "cache-mounts")
        self.tmp_root = os.path.join(data_root, "build", "tmp")
        os.makedirs(self.cache_mounts, exist_ok=True)
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        os.makedirs(self.tmp_root, exist_ok=True)

    # --- entry ----------------------------------------------------------------------------------
    async def build(self, context: BinaryIO, opts: Options) -> AsyncIterator[Message]:
        """The classic builder's stream: {"stream"}, {"status"...} while pulling, {"aux"}."""
        tmp = tempfile.mkdtemp(dir=self.tmp_root, prefix="ctx-")
        try:
            ctx = await asyncio.to_thread(TarContext.ingest, context,
                                          os.path.join(tmp, "context.tar"))
            run = _Run(self, opts, ctx, tmp)
            async for m in run.go():
                yield m
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    def prune(self) -> dict[str, Any]:
        n = self.meta.clear_cache()
        shutil.rmtree(self.cache_mounts, ignore_errors=True)
        os.makedirs(self.cache_mounts, exist_ok=True)
        return {"CachesDeleted": None, "SpaceReclaimed": 0, "Deleted": n}

    # --- commit and diff -------------------------------------------------------------------
    def _container_dirs(self, ref: str) -> tuple[dict[str, Any], str, list[str]]:
        doc = self.containers.resolve(ref)
        upper = self.containers.driver.upper(doc["Id"])
        layers = doc["_berth"]["layers"]
        lowers = [self.images.layer_store.get(c).path for c in reversed(layers)]
        return doc, upper, lowers

    def changes(self, ref: str) -> list[dict[str, Any]]:
        doc, upper, lowers = self._container_dirs(ref)
        if self.containers.driver.name != "overlay2":
            raise InvalidArgument("diff needs the overlay2 storage driver")
        kinds = {"C": 0, "A": 1, "D": 2}
        exclude = _stub_paths(doc)
        return [{"Path": "/" + rel, "Kind": kinds[k]}
                for k, rel, _ in storage.upper_changes(upper, lowers, exclude)]

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", changes: list[str] | None = None,
                     config: dict[str, Any] | None = None, pause: bool = True) -> str:
        from berth.images import apply_changes
        doc, upper, lowers = self._container_dirs(ref)
        if self.containers.driver.name != "overlay2":
            raise InvalidArgument("commit needs the overlay2 storage driver")
        paused = False
        if pause and doc["State"].get("Running") and not doc["State"].get("Paused"):
            await self.containers.pause(doc["Id"])
            paused = True
        try:
            layer = await asyncio.to_thread(self._layer_from_upper, upper, lowers,
                                            _stub_paths(doc), doc["_berth"]["layers"][-1]
                                            if doc["_berth"]["layers"] else None)
        finally:
            if paused:
                await self.containers.unpause(doc["Id"])
        image = self.images.get(doc["Image"])
        cfg = dict(image.config)
        ccfg = {k: doc["Config"].get(k) for k in (
            "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
            "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
            "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal",
            "Shell") if doc["Config"].get(k) not in (None, "", [], {})}
        ccfg.pop("Image", None)
        if config:
            ccfg.update({k: v for k, v in config.items() if v not in (None, "")})
        apply_changes(ccfg, changes or [])
        now = time.time()
        cfg["config"] = ccfg
        cfg["created"] = rfc3339(now)
        cfg["container"] = doc["Id"]
        if author:
            cfg["author"] = author
        if comment:
            cfg["comment"] = comment
        layers = list(doc["_berth"]["layers"]) + [layer.chain_id]
        cfg["rootfs"] = {"type": "layers",
                         "diff_ids": [self.images.layer_store.get(c).diff_id for c in layers]}
        cfg["history"] = list(cfg.get("history") or []) + [
            {"created": rfc3339(now), **({"author": author} if author else {}),
             **({"comment": comment} if comment else {})}]
        tags = [self.images._tag_ref(repo, tag)] if repo else []
        image_id = self.images._commit_image(cfg, layers, tags)
        # the container's event, its actor as the client named it (as before the API split)
        self.containers.emit("container", "commit", ref, {})
        return image_id

    def _layer_from_upper(self, upper: str, lowers: list[str], exclude: set[str],
                          parent: str | None) -> storage.Layer:
        r, w = os.pipe()
        rf = os.fdopen(r, "rb")
        err: list[BaseException] = []

        def writer() -> None:
            try:
                with os.fdopen(w, "wb") as wf:
                    storage.write_diff_tar(upper, lowers, wf, exclude,
                                           self.images.layer_store.shift)
            except BaseException as e:  # noqa: BLE001 - handed to the reader
                err.append(e)
        import threading
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            layer = self.images.layer_store.create(rf, parent)
        finally:
            rf.close()
            t.join()
        if err:
            raise err[0]
        return layer


def _stub_paths(doc: dict[str, Any]) -> set[str]:
    out = set(RUNTIME_STUBS)
    for m in doc.get("Mounts") or []:
        dest = str(m.get("Destination", "")).strip("/")
        if dest:
            out.add(dest)
    return out


def extract_context(src: BinaryIO, dest: str, *, keep_owners: bool = False) -> None:
    """The build context tarball (any compression), with nothing outside `dest`: names with
    `..` and links that lead out are refused, device nodes are skipped."""
    from berth.storage import archive
    stream = archive.decompressed(src)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                try:
                    if m.issym():
                        # a symlink may point anywhere (COPY copies it as it is); only its
                        # own name must stay inside, and nothing is written through it
                        probe = copy.copy(m)
                        probe.type, probe.linkname = tarfile.REGTYPE, ""
                        tarfile.data_filter(probe, dest)
                        checked = m
                    else:
                        checked = tarfile.data_filter(m, dest)
                except tarfile.SpecialFileError:
                    continue
                except tarfile.FilterError as e:
                    raise InvalidArgument(f"invalid build context: {e}") from None
                keep = checked.replace(mode=m.mode & 0o7777, uid=m.uid if keep_owners else 0,
                                       gid=m.gid if keep_owners else 0, uname="", gname="",
                                       deep=False)
                tf.extract(keep, dest, set_attrs=True, numeric_owner=True,
                           filter="fully_trusted")
    except tarfile.ReadError as e:
        if "empty file" in str(e):
            return
        raise InvalidArgument(f"invalid build context: {e}") from None
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid build context: {e}") from None


# --- one build ---------------------------------------------------------------------------------------
class _Run:
    def __init__(self, b: Builder, opts: Options, ctx: TarContext, tmp: str) -> None:
        self.b = b
        self.opts = opts
        self.ctx = ctx
        self.tmp = tmp
        self.filename = opts.dockerfile or "Dockerfile"
        self.used_args: set[str] = set()
        self.stage_images: dict[int, State] = {}
        self.step_no = 0
        self.total = 0
        self.lexer = Lexer()
        self.allowed_cache: set[str] | None = None
        self.missed_before = False
        self._stage_names: dict[int, str] = {}

    def say(self, text: str) -> Message:
        return {"stream": text}

    # --- the plan ---------------------------------------------------------------------------
    def _dockerfile_text(self) -> str:
        name = self.filename
        norm = posixpath.normpath(name)
        if norm == ".." or norm.startswith(("../", "/")):
            raise InvalidArgument(f"the Dockerfile ({name}) must be within the build context")
        rel = resolve(self.ctx, norm if norm != "." else "")
        e = self.ctx.get(rel)
        if e is None:
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
        if e.kind != "f":
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}: not a file")
        return self.ctx.read(rel).decode("utf-8", errors="replace")

    async def go(self) -> AsyncIterator[Message]:
        text = self._dockerfile_text()
        instructions, escape = parse(text, self.filename)
        self.lexer = Lexer(escape)
        meta_ins, stages = stages_of(instructions, self.filename)
        meta_args: dict[str, str] = {}
        for ins in meta_ins:
            for k, v in self._arg_decls(ins, meta_args, {}):
                meta_args[k] = v
        self.meta_args = meta_args
        by_name = {s.name: s for s in stages if s.name}
        if self.opts.target:
            target = by_name.get(self.opts.target.lower())
            if target is None:
                raise InvalidArgument(f"failed to reach build target {self.opts.target} in "
                                      "Dockerfile")
        else:
            target = stages[-1]
        needed = self._needed(stages, by_name, target, meta_args)
        self.total = sum(1 + len(s.steps) for s in stages if s.index in needed)
        self._stage_names = {s.index: s.name for s in stages}
        if self.opts.cachefrom:
            self.allowed_cache = self._cache_from_images()
        state: State | None = None
        for s in stages:
            if s.index not in needed:
                continue
            state = None
            async for m in self._stage(s, by_name):
                if isinstance(m, State):
                    state = m
                else:
                    yield m
            assert state is not None
            self.stage_images[s.index] = state
        assert state is not None
        if self.opts.labels:
            shown = "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.opts.labels.items()))
            key = self._key(state.parent_key, "--label " + shown, {}, "")
            hit = self._lookup(key)
            if hit:
                state = self._state_of(hit)
            else:
                parent = state.parent_key
                labels = dict(state.cfg.get("Labels") or {})
                labels.update(self.opts.labels)
                state.cfg["Labels"] = labels
                state = await self._commit_config(state, shown)
                self._remember(key, parent, state.image_id or "", "--label " + shown, {}, None)
        if state.image_id is None:
            state = await self._commit_config(state, "")
        unused = sorted(k for k in self.opts.buildargs if k not in self.used_args
                        and k not in PROXY_ARGS)
        if unused:
            yield self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                           "consumed\n")
        image_id = state.image_id
        assert image_id
        yield {"aux": {"ID": image_id}}
        yield self.say(f"Successfully built {image_id[7:19]}\n")
        for t in self.opts.tags:
            self.b.images.tag(image_id, t)
            yield self.say(f"Successfully tagged {reference.parse(t).familiar}\n")

    def _needed(self, stages: list[Stage], by_name: dict[str, Stage], target: Stage,
                meta_args: dict[str, str]) -> set[int]:
        needed: set[int] = set()
        todo = [target]
        while todo:
            s = todo.pop()
            if s.index in needed:
                continue
            needed.add(s.index)
            base = self.lexer.word(s.base, meta_args).lower()
            if base in by_name and by_name[base].index < s.index:
                todo.append(by_name[base])
            for ins in s.steps:
                ref = ins.flags.get("from")
                if ins.cmd in ("COPY", "ADD") and ref:
                    dep = self._stage_ref(ref, stages, by_name, s.index)
                    if dep is not None:
                        todo.append(dep)
                if ins.cmd == "RUN" and "mount" in ins.flags:
                    for spec in ins.flags["mount"].split("\n"):
                        opts = _kv(spec)
                        if opts.get("from"):
                            dep = self._stage_ref(opts["from"], stages, by_name, s.index)
                            if dep is not None:
                                todo.append(dep)
        return needed

    @staticmethod
    def _stage_ref(ref: str, stages: list[Stage], by_name: dict[str, Stage], before: int
                   ) -> Stage | None:
        if ref.lower() in by_name and by_name[ref.lower()].index < before:
            return by_name[ref.lower()]
        if ref.isdigit():
            i = int(ref)
            if i >= before:
                raise InvalidArgument(f"invalid from flag value {ref}: refers to current "
                                      "build stage or a later one")
            return stages[i]
        return None

    def _cache_from_images(self) -> set[str]:
        allowed: set[str] = set()
        for name in self.opts.cachefrom:
            try:
                cur: str | None = self.b.images.resolve(name).id
            except NotFound:
                continue
            while cur and cur not in allowed and not cur.startswith("scratch:"):
                allowed.add(cur)
                cur = self.meta_parent(cur)
        return allowed

    def meta_parent(self, image_id: str) -> str | None:
        return self.b.meta.cache_parent_of(image_id)

    # --- stages -----------------------------------------------------------------------------
    async def _stage(self, s: Stage, by_name: dict[str, Stage]) -> AsyncIterator[Any]:
        self.step_no += 1
        base = self.lexer.word(s.base, self.meta_args)
        yield self.say(f"Step {self.step_no}/{self.total} : FROM {base}"
                       f"{' AS ' + s.name if s.name else ''}\n")
        state: State
        if base.lower() in by_name and by_name[base.lower()].index < s.index:
            prev = self.stage_images[by_name[base.lower()].index]
            state = State(prev.image_id, json.loads(json.dumps(prev.config)), list(prev.layers),
                          amended=prev.amended)
        elif base == "scratch":
            state = State(None, {"architecture": host_arch(), "os": "linux", "config": {},
                                 "rootfs": {"type": "layers", "diff_ids": []}, "history": []},
                          [])
        else:
            image = None
            if not self.opts.pull:
                with contextlib.suppress(NotFound):
                    image = self.b.images.resolve(base)
            if image is None:
                async for m in self._pull(base, s.platform or self.opts.platform):
                    yield m
                image = self.b.images.resolve(base)
            state = State(image.id, json.loads(json.dumps(image.config)), list(image.layers))
        if state.image_id:
            yield self.say(f" ---> {state.image_id[7:19]}\n")
        env0 = state.cfg.get("Env") or []
        if not any(e.startswith("PATH=") for e in env0):
            # as Docker's builder: a stage has a PATH, the default one if its image has none
            state.cfg["Env"] = [f"PATH={DEFAULT_PATH}", *env0]
            state.amended = "+PATH"
        self.missed_before = False
        stage_args: dict[str, str] = {}
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            yield self.say(f"# Executing {len(triggers)} build trigger"
                           f"{'s' if len(triggers) > 1 else ''}\n")
            state.cfg["OnBuild"] = None
            for trig in triggers:
                trig_steps, _ = parse(trig + "\n", self.filename)
                for t in trig_steps:
                    async for m in self._step(t, state, stage_args, s, trigger=True):
                        if isinstance(m, State):
                            state = m
                        else:
                            yield m
        for ins in s.steps:
            self.step_no += 1
            yield self.say(f"Step {self.step_no}/{self.total} : {_show(ins)}\n")
            async for m in self._step(ins, state, stage_args, s):
                if isinstance(m, State):
                    state = m
                else:
                    yield m
        yield state

    async def _pull(self, name: str, platform: str) -> AsyncIterator[Message]:
        if self.b.pull is None:
            raise NotFound(f"pull access denied for {name}: this daemon cannot pull")
        from berth.registry import AuthConfig
        ref = reference.parse(name)
        auth = AuthConfig()
        for key, value in self.opts.registry_auth.items():
            if _same_registry(key, ref.domain) and isinstance(value, dict):
                auth = AuthConfig.from_dict(value)
        async for m in self.b.pull(ref.repository, ref.digest or ref.tag or "latest",
                                   platform=platform, auth=auth):
            yield m

    # --- steps ------------------------------------------------------------------------------
    def _env(self, state: State, stage_args: dict[str, str]) -> dict[str, str]:
        env = dict(stage_args)
        for e in state.cfg.get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    def _arg_decls(self, ins: Instruction, env: dict[str, str], meta: dict[str, str]
                   ) -> list[tuple[str, str]]:
        out = []
        if not ins.args:
            raise BuildError(f"{self.filename}:{ins.line}: ARG requires at least one argument")
        for word in ins.args:
            name, eq, default = word.partition("=")
            if not name:
                raise BuildError(f"{self.filename}:{ins.line}: ARG names can not be blank")
            self.used_args.add(name)
            if name in self.opts.buildargs and self.opts.buildargs[name] is not None:
                value = str(self.opts.buildargs[name])
            elif eq:
                value = self.lexer.word(default, env)
            elif name in meta:
                value = meta[name]
            else:
                continue
            out.append((name, value))
        return out

    async def _step(self, ins: Instruction, state: State, stage_args: dict[str, str],
                    stage: Stage, trigger: bool = False) -> AsyncIterator[Any]:
        env = self._env(state, stage_args)
        where = f"{self.filename}:{ins.line}"
        c = ins.cmd
        if c == "ARG":
            for k, v in self._arg_decls(ins, env, self.meta_args):
                stage_args[k] = v
            for m in await self._cached_config(state, ins, stage_args, lambda st: None,
                                               f"ARG {' '.join(ins.args)}"):
                yield m
            return
        if c == "RUN":
            async for m in self._run(ins, state, stage_args):
                yield m
            return
        if c in ("COPY", "ADD"):
            async for m in self._copy(ins, state, stage_args, stage):
                yield m
            return
        if c == "WORKDIR":
            if len(ins.args) != 1:
                raise BuildError(f"{where}: WORKDIR requires exactly one argument")
            path = self.lexer.word(ins.args[0], env)
            if not path.startswith("/"):
                path = posixpath.join(state.cfg.get("WorkingDir") or "/", path)
            path = posixpath.normpath(path)

            def set_wd(st: State) -> None:
                st.cfg["WorkingDir"] = path
            async for m in self._workdir(ins, state, stage_args, path, set_wd):
                yield m
            return
        mutate, shown = self._config_step(ins, state, env, where)
        for m in await self._cached_config(state, ins, stage_args, mutate, shown):
            yield m

    def _config_step(self, ins: Instruction, state: State, env: dict[str, str], where: str
                     ) -> tuple[Callable[[State], None], str]:
        c, a = ins.cmd, ins.args
        w = self.lexer.word
        if c == "ENV":
            if not a:
                raise BuildError(f"{where}: ENV requires at least one argument")
            if len(a) % 2:
                raise BuildError(f"{where}: ENV must have two arguments")
            pairs = [(a[i], w(a[i + 1], env)) for i in range(0, len(a), 2)]
            for k, _ in pairs:
                if not k:
                    raise BuildError(f"{where}: ENV names can not be blank")

            def f(st: State) -> None:
                cur = [e for e in st.cfg.get("Env") or []]
                for k, v in pairs:   # as Docker: a variable set again keeps its place
                    keys = [e.partition("=")[0] for e in cur]
                    if k in keys:
                        cur[keys.index(k)] = f"{k}={v}"
                    else:
                        cur.append(f"{k}={v}")
                st.cfg["Env"] = cur
            return f, "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        if c == "LABEL":
            if not a or len(a) % 2:
                raise BuildError(f"{where}: LABEL requires at least one argument" if not a else
                                 f"{where}: LABEL must have two arguments")
            pairs = [(w(a[i], env), w(a[i + 1], env)) for i in range(0, len(a), 2)]

            def f(st: State) -> None:
                labels = dict(st.cfg.get("Labels") or {})
                labels.update(pairs)
                st.cfg["Labels"] = labels
            return f, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        if c == "MAINTAINER":
            who = " ".join(a)

            def f(st: State) -> None:
                st.config["author"] = who
            return f, f"MAINTAINER {who}"
        if c == "EXPOSE":
            if not a:
                raise BuildError(f"{where}: EXPOSE requires at least one argument")
            ports: list[str] = []
            for word in a:
                for p in self.lexer.words(word, env):
                    ports += _ports(p, where)

            return _add_keys("ExposedPorts", ports), "EXPOSE " + " ".join(sorted(ports))
        if c == "USER":
            if len(a) != 1:
                raise BuildError(f"{where}: USER requires exactly one argument")
            user = w(a[0], env)
            return _set("User", user), f"USER {user}"
        if c == "VOLUME":
            vols = [w(v, env) for v in a] if ins.json else [
                x for v in a for x in self.lexer.words(v, env)]
            if not vols or any(not v.strip() for v in vols):
                raise BuildError(f"{where}: VOLUME specified can not be an empty string")

            return _add_keys("Volumes", vols), "VOLUME " + json.dumps(vols)
        if c == "STOPSIGNAL":
            if len(a) != 1:
                raise BuildError(f"{where}: STOPSIGNAL requires exactly one argument")
            sig = w(a[0], env)
            return _set("StopSignal", sig), f"STOPSIGNAL {sig}"
        if c in ("CMD", "ENTRYPOINT"):
            shell = state.cfg.get("Shell") or DEFAULT_SHELL
            argv = list(a) if ins.json else ([*shell, a[0]] if a and a[0] else [])
            is_entry = c == "ENTRYPOINT"

            def f(st: State) -> None:
                if is_entry:
                    st.cfg["Entrypoint"] = argv or None
                    if not st.cmd_set:
                        st.cfg["Cmd"] = None
                else:
                    st.cfg["Cmd"] = argv or None
            return f, f"{c} {json.dumps(argv)}"
        if c == "SHELL":
            if not ins.json or not a:
                raise BuildError(f"{where}: SHELL requires the arguments to be in JSON form")
            sh = list(a)
            return _set("Shell", sh), f"SHELL {json.dumps(sh)}"
        if c == "ONBUILD":
            trig = a[0] if a else ""
            first = trig.split(None, 1)[0].upper() if trig.strip() else ""
            if first in ("ONBUILD",):
                raise BuildError(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if first in ("FROM", "MAINTAINER"):
                raise BuildError(f"{where}: {first} isn't allowed as an ONBUILD trigger")
            if not first:
                raise BuildError(f"{where}: ONBUILD requires at least one argument")

            def f(st: State) -> None:
                st.cfg["OnBuild"] = list(st.cfg.get("OnBuild") or []) + [trig]
            return f, f"ONBUILD {trig}"
        if c == "HEALTHCHECK":
            return self._healthcheck(ins, where), "HEALTHCHECK " + " ".join(a)
        raise BuildError(f"{where}: unknown instruction: {c}")

    def _healthcheck(self, ins: Instruction, where: str) -> Callable[[State], None]:
        a = ins.args
        if not a:
            raise BuildError(f"{where}: HEALTHCHECK requires an argument")
        kind = a[0].upper()
        if kind == "NONE":
            if len(a) > 1 or ins.flags:
                raise BuildError(f"{where}: HEALTHCHECK NONE takes no arguments")
            hc: dict[str, Any] = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = a[1:]
            if not rest:
                raise BuildError(f"{where}: Missing command after HEALTHCHECK CMD")
            test = ["CMD", *rest] if ins.json else ["CMD-SHELL", rest[0]]
            hc = {"Test": test}
            from berth.units import parse_duration
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in ins.flags:
                    hc[key] = int(parse_duration(ins.flags[flag]) * 1e9)
            if "retries" in ins.flags:
                hc["Retries"] = int(ins.flags["retries"])
        else:
            raise BuildError(f"{where}: Unknown type \"{a[0]}\" in HEALTHCHECK (try CMD)")
        return _set("Healthcheck", hc)

    # --- the cache ----------------------------------------------------------------------------
    def _key(self, parent: str, instruction: str, args: dict[str, str], files: str) -> str:
        blob = json.dumps([parent, instruction, sorted(args.items()), files])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _lookup(self, key: str) -> str | None:
        if self.opts.nocache:
            return None
        for image_id in self.b.meta.get_cache(key):
            if self.allowed_cache is not None and image_id not in self.allowed_cache:
                continue
            if self.b.meta.get_image(image_id) is None:
                continue
            self.missed_before = False
            return image_id
        return None

    def _why(self, parent: str, instruction: str, args: dict[str, str],
             files: dict[str, str] | None) -> str:
        try:
            return self._reason(parent, instruction, args, files)
        finally:
            self.missed_before = True

    def _reason(self, parent: str, instruction: str, args: dict[str, str],
                files: dict[str, str] | None) -> str:
        if self.opts.nocache:
            return "--no-cache"
        if self.allowed_cache is not None:
            return "not in the history of the --cache-from images"
        earlier = self.b.meta.cache_by_parent(parent)
        if not earlier:
            if self.missed_before:
                return "the parent changed (the step before it was not in the cache)"
            return "no earlier build ran this step on this parent image"
        same = [d for _, d in earlier if d.get("instruction") == instruction]
        if not same:
            was = earlier[0][1].get("instruction", "")
            return f"the instruction changed (was: {was})"
        d = same[0]
        old_args = d.get("args") or {}
        changed = sorted(k for k in set(old_args) | set(args) if old_args.get(k) != args.get(k))
        if changed:
            return "build arg " + ", ".join(
                f"{k} changed ({old_args.get(k, '<unset>')} -> {args.get(k, '<unset>')})"
                for k in changed)
        if files is not None:
            old = d.get("files") or {}
            diff = sorted(p for p in set(old) | set(files) if old.get(p) != files.get(p))
            if diff:
                shown = ", ".join(("+" if p not in old else "-" if p not in files else "") + p
                                  for p in diff[:5])
                more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
                return f"copied files changed: {shown}{more}"
        return "the cached image is gone"

    def _remember(self, key: str, parent: str, image_id: str, instruction: str,
                  args: dict[str, str], files: dict[str, str] | None) -> None:
        doc: dict[str, Any] = {"instruction": instruction, "args": args}
        if files is not None:
            doc["files"] = files
        self.b.meta.put_cache(key, parent, image_id, int(time.time()), doc)

    def _cache_args(self, stage_args: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in stage_args.items() if k not in PROXY_ARGS}

    async def _cached_config(self, state: State, ins: Instruction, stage_args: dict[str, str],
                             mutate: Callable[[State], None], shown: str) -> list[Any]:
        """The lines to show and the new state of a step that changes only the config."""
        # as the classic builder: a build arg's value counts where it is used (RUN, or a
        # word it expands into), not in the ARG step itself
        args: dict[str, str] = {}
        key = self._key(state.parent_key, shown, args, "")
        hit = self._lookup(key)
        out: list[Any] = []
        if hit:
            out.append(self.say(" ---> Using cache\n"))
            new = self._state_of(hit)
        else:
            out.append(self.say(f" ---> Not in the cache: "
                                f"{self._why(state.parent_key, shown, args, None)}\n"))
            new = State(state.image_id, json.loads(json.dumps(state.config)), list(state.layers),
                        state.cmd_set)
            mutate(new)
            new = await self._commit_config(new, shown)
            self._remember(key, state.parent_key, new.image_id or "", shown, args, None)
        new.cmd_set = state.cmd_set or ins.cmd == "CMD"
        out.append(self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n"))
        out.append(new)
        return out

    def _state_of(self, image_id: str) -> State:
        img = self.b.images.get(image_id)
        return State(image_id, json.loads(json.dumps(img.config)), list(img.layers))

    def _from_cache(self, hit: str) -> list[Any]:
        """What a step found in the cache yields: the classic builder's two lines, then the
        cached image's state."""
        return [self.say(" ---> Using cache\n"), self.say(f" ---> {hit[7:19]}\n"),
                self._state_of(hit)]

    async def _commit_config(self, state: State, shown: str, layer: storage.Layer | None = None,
                             created_by: str | None = None) -> State:
        now = time.time()
        cfg = json.loads(json.dumps(state.config))
        cfg["created"] = rfc3339(now)
        layers = list(state.layers)
        if layer is not None:
            layers.append(layer.chain_id)
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            cfg["rootfs"] = {"type": "layers", "diff_ids": list(cfg["rootfs"].get("diff_ids") or [])
                             + [layer.diff_id]}
        hist: dict[str, Any] = {"created": rfc3339(now),
                                "created_by": created_by or f"/bin/sh -c #(nop)  {shown}"}
        if layer is None:
            hist["empty_layer"] = True
        if shown or layer is not None:
            cfg["history"] = list(cfg.get("history") or []) + [hist]
        cfg.pop("container", None)
        image_id = await asyncio.to_thread(self.b.images._commit_image, cfg, layers, [])
        return State(image_id, cfg, layers)

    # --- RUN --------------------------------------------------------------------------------
    async def _run(self, ins: Instruction, state: State, stage_args: dict[str, str]
                   ) -> AsyncIterator[Any]:
        shell = state.cfg.get("Shell") or DEFAULT_SHELL
        if ins.json:
            argv = list(ins.args)
        elif ins.heredocs and ins.args and re.fullmatch(
                r"<<-?(['\"]?)" + re.escape(ins.heredocs[0][0]) + r"\1", ins.args[0].strip()):
            argv = [*shell, ins.heredocs[0][1]]   # the heredoc is the script
        elif ins.heredocs:
            text = ins.args[0]
            for name, content in ins.heredocs:
                text += f"\n{content}{name}"
            argv = [*shell, text]
        else:
            argv = [*shell, ins.args[0] if ins.args else ""]
        if not argv or not argv[-1 if not ins.json else 0]:
            raise BuildError(f"{self.filename}:{ins.line}: RUN requires at least one argument")
        args = self._cache_args(stage_args)
        mounts = [_kv(m) for m in ins.flags.get("mount", "").split("\n") if m]
        if ins.flags.get("network") == "host":
            self._entitled(NETWORK_HOST, ins)     # before the cache: a hit needs it as well
        network = ins.flags.get("network", "") or self.opts.network
        shown = "RUN " + (json.dumps(argv) if ins.json else argv[-1])
        extra = json.dumps({"mounts": mounts, "network": ins.flags.get("network", "")},
                           sort_keys=True) if mounts or "network" in ins.flags else ""
        key = self._key(state.parent_key, shown + extra, args, "")
        hit = self._lookup(key)
        if hit:
            for m in self._from_cache(hit):
                yield m
            return
        yield self.say(f" ---> Not in the cache: "
                       f"{self._why(state.parent_key, shown + extra, args, None)}\n")
        if state.image_id is None:
            state = await self._commit_config(state, "")
        env = [f"{k}={v}" for k, v in stage_args.items()]
        env += [f"{k}={v}" for k, v in self.opts.buildargs.items()
                if k in PROXY_ARGS and v is not None and k not in stage_args]
        host_mounts = await asyncio.to_thread(self._run_mounts, mounts, ins)
        body: dict[str, Any] = {
            "Image": state.image_id, "Cmd": argv, "Entrypoint": [""], "Env": env,
            "AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Labels": {"berth.build": "1"},
            "HostConfig": {"NetworkMode": {"": "default", "default": "default"}.get(
                network, network), "Mounts": host_mounts},
        }
        cid, _ = await self.b.containers.create(body, "")
        yield self.say(f" ---> Running in {cid[:12]}\n")
        keep = False
        try:
            await self.b.containers.start(cid)
            async for _, data in self.b.containers.logs(cid, follow=True):
                yield self.say(data.decode(errors="replace"))
            res = await self.b.containers.wait(cid)
            code = int(res.get("StatusCode", 1))
            if code != 0:
                # left for a look, as Docker's classic builder does, unless --force-rm
                keep = not self.opts.forcerm
                raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: "
                                 f"{code}", code)
            doc, upper, lowers = self.b._container_dirs(cid)
            exclude = _stub_paths(doc) | {m["Target"].strip("/") for m in host_mounts}
            layer = await asyncio.to_thread(self.b._layer_from_upper, upper, lowers, exclude,
                                            state.layers[-1] if state.layers else None)
        finally:
            if not keep and (self.opts.rm or self.opts.forcerm):
                with contextlib.suppress(BerthError):
                    await self.b.containers.remove(cid, force=True, volumes=True)
        if self.opts.rm:
            yield self.say(f" ---> Removed intermediate container {cid[:12]}\n")
        new = await self._commit_config(state, shown, layer,
                                        created_by=" ".join(argv) if ins.json else
                                        f"/bin/sh -c {argv[-1]}")
        self._remember(key, state.parent_key, new.image_id or "", shown + extra, args, None)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _entitled(self, name: str, ins: Instruction) -> None:
        """BuildKit's two-sided grant: the build asks for it and the daemon allows it; the
        errors in BuildKit's words."""
        where = f"{self.filename}:{ins.line}"
        if name not in self.opts.allow:
            raise BuildError(f"{where}: {name} is not allowed (RUN --network=host needs "
                             f"`berth build --allow {name}`)")
        if name not in self.b.entitlements:
            raise BuildError(f"{where}: granting entitlement {name} is not allowed by build "
                             f"daemon configuration (berthd --allow-insecure-entitlement {name})")

    def _run_mounts(self, mounts: list[dict[str, str]], ins: Instruction) -> list[dict[str, Any]]:
        out = []
        where = f"{self.filename}:{ins.line}"
        for m in mounts:
            typ = m.get("type", "bind")
            target = m.get("target") or m.get("dst") or m.get("destination") or ""
            if typ == "secret":
                sid = m.get("id") or os.path.basename(target)
                target = target or f"/run/secrets/{sid}"
                if sid not in self.opts.secrets:
                    if m.get("required") in ("true", "1", ""):
                        raise BuildError(f"{where}: secret {sid} not found")
                    continue
                path = os.path.join(self.tmp, f"secret-{secrets.token_hex(4)}")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.opts.secrets[sid])
                out.append({"Type": "bind", "Source": path, "Target": target, "ReadOnly": True})
                continue
            if not target:
                raise BuildError(f"{where}: mount of type {typ} needs a target")
            if typ == "tmpfs":
                out.append({"Type": "tmpfs", "Target": target})
            elif typ == "cache":
                cid = m.get("id") or target
                d = os.path.join(self.b.cache_mounts,
                                 hashlib.sha256(cid.encode()).hexdigest()[:32])
                if not os.path.isdir(d):
                    os.makedirs(d)
                    os.chmod(d, int(m.get("mode", "755"), 8))
                    os.chown(d, int(m.get("uid", "0")), int(m.get("gid", "0")))
                out.append({"Type": "bind", "Source": d, "Target": target, "ReadOnly": False})
            elif typ == "bind":
                rw = m.get("rw", m.get("readwrite", "false")) in ("true", "1", "")
                source = m.get("source", m.get("src", ""))
                if m.get("from"):
                    # the source is followed inside the stage's tree, never to a host path:
                    # a symlink there must not make the bind mount reach the host
                    tree = LayersTree(self._source_dirs(m["from"]))
                    rel = resolve(tree, posixpath.normpath("/" + source).lstrip("/"))
                    if tree.get(rel) is None:
                        raise BuildError(f"{where}: bind mount source {source}: not found in "
                                         f"{m['from']}")
                    src = os.path.join(self.tmp, f"bind-{secrets.token_hex(4)}")
                    tree.materialize(rel, src)
                else:
                    rel = resolve(self.ctx, posixpath.normpath("/" + source).lstrip("/"))
                    if self.ctx.get(rel) is None:
                        raise BuildError(f"{where}: bind mount source {source}: not found in "
                                         "the build context")
                    src = os.path.join(self.tmp, f"bind-{secrets.token_hex(4)}")
                    self.ctx.materialize(rel, src)
                out.append({"Type": "bind", "Source": src, "Target": target,
                            "ReadOnly": not rw})
            else:
                raise BuildError(f"{where}: unsupported mount type {typ!r}")
        return out

    def _source_dirs(self, ref: str) -> list[str]:
        idx = int(ref) if ref.isdigit() else None
        names = {name: i for i, name in self._stage_names.items() if name}
        if ref.lower() in names:
            idx = names[ref.lower()]
        if idx is not None and idx in self.stage_images:
            layers = self.stage_images[idx].layers
        else:
            try:
                img = self.b.images.resolve(ref)
            except NotFound:
                raise BuildError(f"invalid from flag value {ref}: no stage or image of that "
                                 "name") from None
            layers = img.layers
        return [self.b.images.layer_store.get(c).path for c in reversed(layers)]

    # --- WORKDIR ----------------------------------------------------------------------------
    async def _workdir(self, ins: Instruction, state: State, stage_args: dict[str, str],
                       path: str, set_wd: Callable[[State], None]) -> AsyncIterator[Any]:
        shown = f"WORKDIR {path}"
        key = self._key(state.parent_key, shown, {}, "")
        hit = self._lookup(key)
        if hit:
            for m in self._from_cache(hit):
                yield m
            return
        yield self.say(f" ---> Not in the cache: {self._why(state.parent_key, shown, {}, None)}\n")
        new = State(state.image_id, json.loads(json.dumps(state.config)), list(state.layers))
        set_wd(new)
        view = _RootView(self.b, state.layers)
        layer = None
        if view.lookup(path) is None:
            entries = view.parents_for(path, include_self=True)
            layer = await asyncio.to_thread(self._layer_of_entries, entries, state)
        new = await self._commit_config(new, shown, layer)
        self._remember(key, state.parent_key, new.image_id or "", shown, {}, None)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _layer_of_entries(self, entries: list[tarfile.TarInfo], state: State,
                          files: list[tuple[tarfile.TarInfo, Any]] = ()  # type: ignore[assignment]
                          ) -> storage.Layer:
        buf = _SpoolPipe()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for ti in entries:
                tf.addfile(ti)
            for ti, src in files:
                if src is not None and ti.isreg():
                    with (src() if callable(src) else open(src, "rb")) as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
        buf.seek(0)
        try:
            return self.b.images.layer_store.create(buf, state.layers[-1] if state.layers else None)  # type: ignore[arg-type]
        finally:
            buf.close()

    # --- COPY and ADD -----------------------------------------------------------------------
    async def _copy(self, ins: Instruction, state: State, stage_args: dict[str, str],
                    stage: Stage) -> AsyncIterator[Any]:
        where = f"{self.filename}:{ins.line}"
        env = self._env(state, stage_args)
        words = [self.lexer.word(a, env) for a in ins.args]
        heredoc_files = []
        if ins.heredocs:
            names = {n for n, _ in ins.heredocs}
            for n, content in ins.heredocs:
                heredoc_files.append((n, content))
            words = [w for w in words if w.lstrip("<-") not in names]
        if len(words) + len(heredoc_files) < 2 and not (heredoc_files and words):
            raise BuildError(f"{where}: {ins.cmd} requires at least two arguments, but only "
                             f"{len(words)} provided")
        dest, srcs = words[-1], words[:-1]
        from_ref = self.lexer.word(ins.flags["from"], env) if ins.flags.get("from") else ""
        chown = self.lexer.word(ins.flags.get("chown", ""), env)
        chmod = ins.flags.get("chmod", "")
        if chmod and not re.fullmatch(r"[0-7]{3,4}", chmod):
            raise BuildError(f"{where}: invalid chmod parameter: {chmod}")
        workdir = state.cfg.get("WorkingDir") or "/"
        dest_is_dir = dest.endswith(("/", "/.")) or dest in (".", "..")
        dest_abs = posixpath.normpath(dest if dest.startswith("/") else
                                      posixpath.join(workdir, dest))
        view = _RootView(self.b, state.layers)
        uid, gid = view.owner(chown, where) if chown else (0, 0)
        mode = int(chmod, 8) if chmod else None
        plan = await asyncio.to_thread(self._copy_plan, ins, srcs, heredoc_files, from_ref,
                                       where, dest_abs, dest_is_dir, view, uid, gid, mode)
        entries, files, manifest = plan
        shown = f"{ins.cmd} " + " ".join(f"--{k}={v}" for k, v in sorted(ins.flags.items())
                                         if k in ("from", "chown", "chmod", "link")) + \
            (" " if any(k in ins.flags for k in ("from", "chown", "chmod", "link")) else "") + \
            " ".join(srcs + [dest])
        files_hash = hashlib.sha256(json.dumps(sorted(manifest.items())).encode()).hexdigest()
        key = self._key(state.parent_key, shown, {}, files_hash)
        hit = self._lookup(key)
        if hit:
            for m in self._from_cache(hit):
                yield m
            return
        yield self.say(f" ---> Not in the cache: "
                       f"{self._why(state.parent_key, shown, {}, manifest)}\n")
        layer = await asyncio.to_thread(self._layer_of_entries, entries, state, files)
        new = await self._commit_config(state, shown, layer, created_by=(
            f"/bin/sh -c #(nop) {ins.cmd} {'dir' if len(files) != 1 else 'file'}:"
            f"{files_hash[:64]} in {dest_abs} "))
        self._remember(key, state.parent_key, new.image_id or "", shown, {}, manifest)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _copy_plan(self, ins: Instruction, srcs: list[str], heredocs: list[tuple[str, str]],
                   from_ref: str, where: str, dest: str, dest_is_dir: bool, view: _RootView,
                   uid: int, gid: int, mode: int | None
                   ) -> tuple[list[tarfile.TarInfo], list[tuple[tarfile.TarInfo, Any]],
                              dict[str, str]]:
        """The tar entries of a COPY/ADD layer, and the manifest its cache key hashes."""
        tree: Tree = self.ctx
        if from_ref:
            tree = LayersTree(self._source_dirs(from_ref))
        matches: list[str] = []   # names relative to the tree's root
        urls: list[str] = []
        for s in srcs:
            if ins.cmd == "ADD" and re.match(r"^https?://", s):
                urls.append(s)
                continue
            norm = posixpath.normpath(s)
            if norm == ".." or norm.startswith("../"):
                raise BuildError(f"{where}: COPY failed: forbidden path outside the build "
                                 f"context: {s} ()")
            rel = posixpath.normpath("/" + s).lstrip("/")
            if any(ch in rel for ch in "*?["):
                import fnmatch
                found = [p for p in tree.paths()
                         if p.count("/") == rel.count("/") and fnmatch.fnmatchcase(p, rel)]
                if not found:
                    raise BuildError(f"{where}: COPY failed: no source files were specified")
                matches += found
            else:
                if tree.get(rel) is None:
                    raise BuildError(f"{where}: COPY failed: file not found in build context or "
                                     f"excluded by .dockerignore: stat {s}: file does not exist")
                matches.append(rel)
        multiple = len(matches) + len(urls) + len(heredocs) > 1
        if len(matches) == 1 and not urls and not heredocs:
            e = tree.get(resolve(tree, matches[0], f"{where}: "))
            if e is not None and e.kind == "d":
                dest_is_dir = True   # a directory's contents go into the destination directory
        if multiple and not dest_is_dir:
            raise BuildError(f"{where}: When using {ins.cmd} with more than one source file, the "
                             "destination must be a directory and end with a /")
        to_dir = dest_is_dir or view.is_dir(dest)
        # as Docker: directories the copy creates belong to --chown's owner
        entries = view.parents_for(dest if to_dir else posixpath.dirname(dest),
                                   include_self=to_dir, owner=(uid, gid))
        files: list[tuple[tarfile.TarInfo, Any]] = []
        manifest: dict[str, str] = {}

        def add(t: Tree, rel: str, target: str, label: str) -> None:
            e = t.get(rel)
            if e is None:
                return
            ti = tarfile.TarInfo(target.lstrip("/"))
            ti.uid, ti.gid = uid, gid
            ti.mtime = e.mtime
            ti.mode = mode if mode is not None else e.mode
            opener = None
            if e.kind == "d":
                ti.type = tarfile.DIRTYPE
                manifest[label] = f"d:{e.mode:o}"
            elif e.kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e.link
                ti.mode = 0o777
                manifest[label] = f"l:{e.link}"
            else:
                ti.size = e.size
                manifest[label] = f"f:{e.mode:o}:{t.digest(rel)}"
                opener = functools.partial(t.open, rel)
            files.append((ti, opener))

        def walk(t: Tree, rel: str) -> list[str]:
            out = []
            for n in t.children(rel):
                sub = f"{rel}/{n}" if rel else n
                out.append(sub)
                e = t.get(sub)
                if e is not None and e.kind == "d":
                    out += walk(t, sub)
            return out

        for rel in matches:
            named = posixpath.basename(rel)
            # as Docker: a source named in the instruction is followed if it is a symlink,
            # inside the root
            real = resolve(tree, rel, f"{where}: ")
            e = tree.get(real)
            if e is None:
                raise BuildError(f"{where}: COPY failed: file not found in build context or "
                                 f"excluded by .dockerignore: stat {rel}: file does not exist")
            label = rel or "."
            if e.kind == "d":
                for sub in walk(tree, real):
                    inner = sub[len(real) + 1:] if real else sub
                    add(tree, sub, posixpath.join(dest, inner), f"{label}/{inner}")
                if not tree.children(real):
                    manifest[label] = "d:empty"
            elif ins.cmd == "ADD" and not from_ref and self._is_archive(tree, real):
                manifest[label] = f"a:{tree.digest(real)}"
                local = os.path.join(self.tmp, "archive-" + secrets.token_hex(4))
                tree.materialize(real, local)
                files += _archive_entries(local, dest, os.path.join(self.tmp, "unpacked-" +
                                                                    secrets.token_hex(4)))
            else:
                target = posixpath.join(dest, named) if to_dir else dest
                add(tree, real, target, label)
        for n, content in heredocs:
            path = os.path.join(self.tmp, f"heredoc-{secrets.token_hex(4)}")
            with open(path, "w") as f:
                f.write(content)
            os.chmod(path, 0o644)
            target = posixpath.join(dest, n) if to_dir else dest
            t = DirTree(self.tmp)
            add(t, os.path.basename(path), target, f"<<{n}")
        for url in urls:
            path, name, mtime = self._download(url, where)
            target = posixpath.join(dest, name) if to_dir else dest
            os.chmod(path, 0o600)
            add(DirTree(self.tmp), os.path.basename(path), target, url)
            files[-1][0].mtime = mtime
        return entries, files, manifest

    @staticmethod
    def _is_archive(tree: Tree, rel: str) -> bool:
        e = tree.get(rel)
        if e is None or e.kind != "f":
            return False
        with tree.open(rel) as f:
            head = f.read(min(512, e.size))
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or \
                head[:4] == b"\x28\xb5\x2f\xfd":
            return True
        return len(head) >= 262 and head[257:262] == b"ustar"

    def _download(self, url: str, where: str) -> tuple[str, str, int]:
        import email.utils
        import urllib.request
        path = os.path.join(self.tmp, f"url-{secrets.token_hex(4)}")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(path, "wb") as f:  # noqa: S310
                shutil.copyfileobj(r, f, 1 << 20)
                lm = r.headers.get("Last-Modified")
        except OSError as e:
            raise BuildError(f"{where}: ADD failed: {url}: {e}") from None
        name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
        mtime = int(time.time())
        if lm:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(email.utils.parsedate_to_datetime(lm).timestamp())
        return path, name, mtime


class _SpoolPipe(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    def __init__(self) -> None:
        super().__init__(max_size=16 << 20)


def _archive_entries(src: str, dest: str, scratch: str
                     ) -> list[tuple[tarfile.TarInfo, str | None]]:
    """ADD of a local archive: its entries under `dest` (extracted safely first)."""
    os.makedirs(scratch)
    with open(src, "rb") as f:
        extract_context(f, scratch, keep_owners=True)   # as Docker: an archive's owners stay
    out: list[tuple[tarfile.TarInfo, str | None]] = []
    for dirpath, dirnames, filenames in os.walk(scratch):
        dirnames.sort()
        rd = os.path.relpath(dirpath, scratch)
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = n if rd == "." else f"{rd}/{n}"
            ti = tarfile.TarInfo(posixpath.join(dest, rel).lstrip("/"))
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.mtime = int(st.st_mtime)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
                out.append((ti, None))
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(p)
                out.append((ti, None))
            elif stat.S_ISREG(st.st_mode):
                ti.size = st.st_size
                out.append((ti, p))
    return out


def _kv(spec: str) -> dict[str, str]:
    out = {}
    for part in spec.split(","):
        k, eq, v = part.strip().partition("=")
        if k:
            out[k.lower()] = v if eq else ""
    return out


def _set(key: str, value: Any) -> Callable[[State], None]:
    """A config step that sets one field of the container config."""
    def f(st: State) -> None:
        st.cfg[key] = value
    return f


def _add_keys(key: str, names: list[str]) -> Callable[[State], None]:
    """A config step that adds names to a set-like field (ExposedPorts, Volumes)."""
    def f(st: State) -> None:
        st.cfg[key] = {**(st.cfg.get(key) or {}), **{n: {} for n in names}}
    return f


def _ports(p: str, where: str) -> list[str]:
    proto = "tcp"
    if "/" in p:
        p, proto = p.split("/", 1)
    proto = proto.lower()
    if ":" in p:
        raise BuildError(f"{where}: EXPOSE: invalid port {p}: use -p to map ports")
    if "-" in p:
        a, b = p.split("-", 1)
        if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
            raise BuildError(f"{where}: invalid range format for --expose: {p}")
        return [f"{x}/{proto}" for x in range(int(a), int(b) + 1)]
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise BuildError(f"{where}: invalid containerPort: {p}")
    return [f"{int(p)}/{proto}"]


def _show(ins: Instruction) -> str:
    return ins.original.split("\n", 1)[0] if ins.heredocs else ins.original


def _same_registry(key: str, domain: str) -> bool:
    from berth.registry import normalize_server
    return normalize_server(key) == domain


class _RootView:
    """Looks up paths in an image's layers without mounting them."""

    def __init__(self, b: Builder, layers: list[str]) -> None:
        self.dirs = [b.images.layer_store.get(c).path for c in reversed(layers)]
        self.shift = b.images.layer_store.shift   # owners on disk, less this, are the image's

    def lookup(self, path: str) -> os.stat_result | None:
        rel = path.strip("/")
        if not rel:
            return os.stat("/")
        return storage._lower_stat(rel, self.dirs)

    def is_dir(self, path: str) -> bool:
        st = self.lookup(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def parents_for(self, path: str, include_self: bool, owner: tuple[int, int] = (0, 0)
                    ) -> list[tarfile.TarInfo]:
        """Directory entries for `path`'s parents (and itself): as the image has them, or
        root's 0755 where it has none."""
        out = []
        parts = [p for p in path.strip("/").split("/") if p]
        upto = len(parts) if include_self else len(parts) - 0
        for k in range(1, upto + 1):
            rel = "/".join(parts[:k])
            st = self.lookup(rel)
            ti = tarfile.TarInfo(rel)
            ti.type = tarfile.DIRTYPE
            if st is not None and stat.S_ISDIR(st.st_mode):
                ti.mode = stat.S_IMODE(st.st_mode)
                ti.uid = max(st.st_uid - self.shift[0], 0)
                ti.gid = max(st.st_gid - self.shift[1], 0)
                ti.mtime = int(st.st_mtime)
            elif st is not None:
                break  # a file or a symlink there: leave it to the layer's writer
            else:
                ti.mode, ti.mtime = 0o755, int(time.time())
                ti.uid, ti.gid = owner
            out.append(ti)
        return out

    def _read(self, path: str) -> list[list[str]]:
        """/etc/passwd or /etc/group as the image has it: followed inside the image's root
        only (a symlink there to the host's file reads the image's own or nothing), and
        bounded."""
        with storage.MergedView(self.dirs) as view:
            node = view.resolve(path)
            if node is None:
                return []
            try:
                if not stat.S_ISREG(node.st.st_mode):
                    return []
                fd = view.open(node)
            finally:
                node.close()
        with os.fdopen(fd, "rb") as f:
            text = f.read(4 << 20).decode(errors="replace")
        return [line.split(":") for line in text.splitlines() if line.strip()]

    def owner(self, spec: str, where: str) -> tuple[int, int]:
        user, _, group = spec.partition(":")
        if user.isdigit():
            uid = int(user)
            gid = uid if not group else -1
        else:
            for e in self._read("etc/passwd"):
                if e[0] == user and len(e) > 3:
                    uid, gid = int(e[2]), int(e[3]) if not group else -1
                    break
            else:
                raise BuildError(f"{where}: unable to convert uid/gid chown string to host "
                                 f"mapping: can't find uid for user {user}: no such user: {user}")
        if group:
            if group.isdigit():
                gid = int(group)
            else:
                for e in self._read("etc/group"):
                    if e[0] == group and len(e) > 2:
                        gid = int(e[2])
                        break
                else:
                    raise BuildError(f"{where}: unable to convert uid/gid chown string to host "
                                     f"mapping: can't find gid for group {group}: no such group: "
                                     f"{group}")
        return uid, gid


__all__ = ["Builder", "Options", "BuildError", "parse", "extract_context", "check_entitlements",
           "ENTITLEMENTS", "NETWORK_HOST"]
