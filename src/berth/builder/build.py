"""The builder: one build's plan (stages, the target and what it needs), its stages and steps.

Imports `images`, `reference`, `errors`. Each step makes an image, as the classic builder does;
RUN steps run in a container through the `ContainerRunner` (run.py); COPY, ADD and WORKDIR
write their layer directly (files.py); the other instructions change only the config
(instructions.py). Every step first asks the cache (cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

from berth import dockerignore, reference
from berth.builder import commit as _commit
from berth.builder.cache import CacheStore, StepCache
from berth.builder.cache import key as cache_key
from berth.builder.context import TarContext, resolve
from berth.builder.files import FileSteps
from berth.builder.instructions import config_step
from berth.builder.run import RunStep
from berth.builder.runner import ContainerRunner
from berth.builder.shell import Lexer
from berth.builder.state import DEFAULT_PATH, PROXY_ARGS, BuildError, Message, Options, State
from berth.builder.syntax import Instruction, Stage, kv, parse, show, stages_of
from berth.errors import InvalidArgument, NotFound
from berth.images import ImageService, host_arch


class Builder:
    def __init__(
        self,
        images: ImageService,
        containers: ContainerRunner,
        *,
        data_root: str,
        pull: Callable[..., AsyncIterator[Message]] | None = None,
        entitlements: frozenset[str] = frozenset(),
    ) -> None:
        self.images = images
        # what the daemon may grant (berthd --allow-insecure-entitlement), as buildkitd
        self.entitlements = entitlements
        self.containers = containers
        self.meta: CacheStore = images.meta
        self.pull = pull
        self.cache_mounts = os.path.join(data_root, "build", "cache-mounts")
        self.tmp_root = os.path.join(data_root, "build", "tmp")
        os.makedirs(self.cache_mounts, exist_ok=True)
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        os.makedirs(self.tmp_root, exist_ok=True)

    async def build(self, context: BinaryIO, opts: Options) -> AsyncIterator[Message]:
        """The classic builder's stream: {"stream"}, {"status"...} while pulling, {"aux"}."""
        tmp = tempfile.mkdtemp(dir=self.tmp_root, prefix="ctx-")
        try:
            ctx = await asyncio.to_thread(
                TarContext.ingest, context, os.path.join(tmp, "context.tar")
            )
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

    def changes(self, ref: str) -> list[dict[str, Any]]:
        return _commit.changes(self.images, self.containers, ref)

    async def commit(
        self,
        ref: str,
        *,
        repo: str = "",
        tag: str = "",
        comment: str = "",
        author: str = "",
        changes: list[str] | None = None,
        config: dict[str, Any] | None = None,
        pause: bool = True,
    ) -> str:
        return await _commit.commit(
            self.images,
            self.containers,
            ref,
            repo=repo,
            tag=tag,
            comment=comment,
            author=author,
            changes=changes,
            config=config,
            pause=pause,
        )


class _Run(RunStep, FileSteps):
    """One build."""

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
        self.cache = StepCache(b.meta, nocache=opts.nocache)
        self._stage_names: dict[int, str] = {}
        self.meta_args: dict[str, str] = {}

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
        text = self.ctx.read(rel).decode("utf-8", errors="replace")
        self._drop_build_files(norm)
        return text

    def _drop_build_files(self, dockerfile: str) -> None:
        """As dockerd once it has read the Dockerfile: `.dockerignore` and the Dockerfile
        leave the context if the context's `.dockerignore` names them. The docker CLI sends
        both even when they are ignored (the daemon reads them), and names a Dockerfile from
        stdin or from outside the context `.dockerfile.<random>` and lists it there, so that
        `COPY . /x` copies neither. The rest of the context is taken as the client sent it."""
        e = self.ctx.get(".dockerignore")
        if e is None or e.kind != "f":
            return
        matcher = dockerignore.Matcher(
            dockerignore.read_patterns(
                self.ctx.read(".dockerignore").decode("utf-8", errors="replace")
            )
        )
        for rel in (".dockerignore", dockerfile):
            if matcher.excluded(rel):
                self.ctx.remove(rel)

    async def go(self) -> AsyncIterator[Message]:
        stages, by_name, needed = self._plan()
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
        state = await self._labelled(state)
        if state.image_id is None:
            state = await self._commit_config(state, "")
        unused = sorted(
            k for k in self.opts.buildargs if k not in self.used_args and k not in PROXY_ARGS
        )
        if unused:
            yield self.say(
                f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n"
            )
        image_id = state.image_id
        assert image_id
        yield {"aux": {"ID": image_id}}
        yield self.say(f"Successfully built {image_id[7:19]}\n")
        for t in self.opts.tags:
            self.b.images.tag(image_id, t)
            yield self.say(f"Successfully tagged {reference.parse(t).familiar}\n")

    def _plan(self) -> tuple[list[Stage], dict[str, Stage], set[int]]:
        """The stages, those by name, and the indexes of those the target needs."""
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
                raise InvalidArgument(
                    f"failed to reach build target {self.opts.target} in Dockerfile"
                )
        else:
            target = stages[-1]
        needed = self._needed(stages, by_name, target, meta_args)
        self.total = sum(1 + len(s.steps) for s in stages if s.index in needed)
        self._stage_names = {s.index: s.name for s in stages}
        if self.opts.cachefrom:
            self.cache.allow_history_of(self.b.images, self.opts.cachefrom)
        return stages, by_name, needed

    async def _labelled(self, state: State) -> State:
        """The final image with --label's labels, as a step of its own (cached too)."""
        if not self.opts.labels:
            return state
        shown = "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.opts.labels.items()))
        key = cache_key(state.parent_key, "--label " + shown, {}, "")
        hit = self.cache.lookup(key)
        if hit:
            return self._state_of(hit)
        parent = state.parent_key
        labels = dict(state.cfg.get("Labels") or {})
        labels.update(self.opts.labels)
        state.cfg["Labels"] = labels
        state = await self._commit_config(state, shown)
        self.cache.remember(key, parent, state.image_id or "", "--label " + shown, {}, None)
        return state

    def _needed(
        self,
        stages: list[Stage],
        by_name: dict[str, Stage],
        target: Stage,
        meta_args: dict[str, str],
    ) -> set[int]:
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
                        opts = kv(spec)
                        if opts.get("from"):
                            dep = self._stage_ref(opts["from"], stages, by_name, s.index)
                            if dep is not None:
                                todo.append(dep)
        return needed

    @staticmethod
    def _stage_ref(
        ref: str, stages: list[Stage], by_name: dict[str, Stage], before: int
    ) -> Stage | None:
        if ref.lower() in by_name and by_name[ref.lower()].index < before:
            return by_name[ref.lower()]
        if ref.isdigit():
            i = int(ref)
            if i >= before:
                raise InvalidArgument(
                    f"invalid from flag value {ref}: refers to current build stage or a later one"
                )
            return stages[i]
        return None

    # --- stages -----------------------------------------------------------------------------
    async def _stage(self, s: Stage, by_name: dict[str, Stage]) -> AsyncIterator[Any]:
        self.step_no += 1
        base = self.lexer.word(s.base, self.meta_args)
        yield self.say(
            f"Step {self.step_no}/{self.total} : FROM {base}{' AS ' + s.name if s.name else ''}\n"
        )
        state: State | None = None
        async for m in self._base_state(s, base, by_name):
            if isinstance(m, State):
                state = m
            else:
                yield m
        assert state is not None
        if state.image_id:
            yield self.say(f" ---> {state.image_id[7:19]}\n")
        env0 = state.cfg.get("Env") or []
        if not any(e.startswith("PATH=") for e in env0):
            # as Docker's builder: a stage has a PATH, the default one if its image has none
            state.cfg["Env"] = [f"PATH={DEFAULT_PATH}", *env0]
            state.amended = "+PATH"
        self.cache.missed_before = False
        stage_args: dict[str, str] = {}
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            yield self.say(
                f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            )
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
            yield self.say(f"Step {self.step_no}/{self.total} : {show(ins)}\n")
            async for m in self._step(ins, state, stage_args, s):
                if isinstance(m, State):
                    state = m
                else:
                    yield m
        yield state

    async def _base_state(
        self, s: Stage, base: str, by_name: dict[str, Stage]
    ) -> AsyncIterator[Any]:
        """The state a stage starts from: an earlier stage's, scratch, or an image's (pulled
        where it is missing, or always with --pull); pull progress, then the state."""
        if base.lower() in by_name and by_name[base.lower()].index < s.index:
            prev = self.stage_images[by_name[base.lower()].index]
            yield State(
                prev.image_id,
                json.loads(json.dumps(prev.config)),
                list(prev.layers),
                amended=prev.amended,
            )
            return
        if base == "scratch":
            yield State(
                None,
                {
                    "architecture": host_arch(),
                    "os": "linux",
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [],
                },
                [],
            )
            return
        image = None
        if not self.opts.pull:
            with contextlib.suppress(NotFound):
                image = self.b.images.resolve(base)
        if image is None:
            async for m in self._pull(base, s.platform or self.opts.platform):
                yield m
            image = self.b.images.resolve(base)
        yield State(image.id, json.loads(json.dumps(image.config)), list(image.layers))

    async def _pull(self, name: str, platform: str) -> AsyncIterator[Message]:
        if self.b.pull is None:
            raise NotFound(f"pull access denied for {name}: this daemon cannot pull")
        from berth.images.distribution import auth_for

        ref = reference.parse(name)
        auth = auth_for(self.opts.registry_auth, ref.domain)
        async for m in self.b.pull(
            ref.repository, ref.digest or ref.tag or "latest", platform=platform, auth=auth
        ):
            yield m

    # --- steps ------------------------------------------------------------------------------
    def _arg_decls(
        self, ins: Instruction, env: dict[str, str], meta: dict[str, str]
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

    async def _step(
        self,
        ins: Instruction,
        state: State,
        stage_args: dict[str, str],
        stage: Stage,
        trigger: bool = False,
    ) -> AsyncIterator[Any]:
        env = self._env(state, stage_args)
        where = f"{self.filename}:{ins.line}"
        c = ins.cmd
        if c == "ARG":
            for k, v in self._arg_decls(ins, env, self.meta_args):
                stage_args[k] = v
            for m in await self._cached_config(
                state, ins, stage_args, lambda st: None, f"ARG {' '.join(ins.args)}"
            ):
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
        mutate, shown = config_step(ins, state, env, where, self.lexer)
        for m in await self._cached_config(state, ins, stage_args, mutate, shown):
            yield m

    async def _cached_config(
        self,
        state: State,
        ins: Instruction,
        stage_args: dict[str, str],
        mutate: Callable[[State], None],
        shown: str,
    ) -> list[Any]:
        """The lines to show and the new state of a step that changes only the config."""
        # as the classic builder: a build arg's value counts where it is used (RUN, or a
        # word it expands into), not in the ARG step itself
        args: dict[str, str] = {}
        key = cache_key(state.parent_key, shown, args, "")
        hit = self.cache.lookup(key)
        out: list[Any] = []
        if hit:
            out.append(self.say(" ---> Using cache\n"))
            new = self._state_of(hit)
        else:
            out.append(
                self.say(
                    f" ---> Not in the cache: "
                    f"{self.cache.why(state.parent_key, shown, args, None)}\n"
                )
            )
            new = State(
                state.image_id,
                json.loads(json.dumps(state.config)),
                list(state.layers),
                state.cmd_set,
            )
            mutate(new)
            new = await self._commit_config(new, shown)
            self.cache.remember(key, state.parent_key, new.image_id or "", shown, args, None)
        new.cmd_set = state.cmd_set or ins.cmd == "CMD"
        out.append(self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n"))
        out.append(new)
        return out


__all__ = ["Builder"]
