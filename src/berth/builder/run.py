"""RUN: a step that runs a command in a container of the image so far; what it changed becomes
the step's layer.

Imports `containers` (the step's spec, for the ContainerRunner), `errors`. The container is
made, run and read through the builder's `ContainerRunner`; `RUN --mount` sources (secrets,
cache directories, files of the context or of a stage) are prepared here as host paths of the
build's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

from berth.builder._base import StepContext
from berth.builder.cache import cache_args
from berth.builder.context import LayersTree, resolve
from berth.builder.state import DEFAULT_SHELL, NETWORK_HOST, PROXY_ARGS, BuildError, State
from berth.builder.syntax import Instruction, kv
from berth.containers.buildrunner import StepMount, StepSpec
from berth.errors import BerthError
from berth.images import Layer


class RunStep(StepContext):
    async def _run(
        self, ins: Instruction, state: State, stage_args: dict[str, str]
    ) -> AsyncIterator[Any]:
        argv = self._run_argv(ins, state)
        args = cache_args(stage_args)
        mounts = [kv(m) for m in ins.flags.get("mount", "").split("\n") if m]
        if ins.flags.get("network") == "host":
            self._entitled(NETWORK_HOST, ins)  # before the cache: a hit needs it as well
        shown = "RUN " + (json.dumps(argv) if ins.json else argv[-1])
        extra = (
            json.dumps({"mounts": mounts, "network": ins.flags.get("network", "")}, sort_keys=True)
            if mounts or "network" in ins.flags
            else ""
        )
        key, said, hit = self._consult(state, shown + extra, args, "", None)
        for m in said:
            yield m
        if hit:
            return
        if state.image_id is None:
            state = await self._commit_config(state, "")
        layer: list[Layer] = []
        async for m in self._run_container(ins, state, stage_args, argv, mounts, layer):
            yield m
        new = await self._commit_config(
            state,
            shown,
            layer[0],
            created_by=" ".join(argv) if ins.json else f"/bin/sh -c {argv[-1]}",
        )
        self.cache.remember(key, state.parent_key, new.image_id or "", shown + extra, args, None)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _run_argv(self, ins: Instruction, state: State) -> list[str]:
        """The command of a RUN: its JSON form as it is, its shell form (or heredoc) in the
        stage's SHELL."""
        shell = state.cfg.get("Shell") or DEFAULT_SHELL
        if ins.json:
            argv = list(ins.args)
        elif (
            ins.heredocs
            and ins.args
            and re.fullmatch(
                r"<<-?(['\"]?)" + re.escape(ins.heredocs[0][0]) + r"\1", ins.args[0].strip()
            )
        ):
            argv = [*shell, ins.heredocs[0][1]]  # the heredoc is the script
        elif ins.heredocs:
            text = ins.args[0]
            for name, content in ins.heredocs:
                text += f"\n{content}{name}"
            argv = [*shell, text]
        else:
            argv = [*shell, ins.args[0] if ins.args else ""]
        if not argv or not argv[-1 if not ins.json else 0]:
            raise BuildError(f"{self.filename}:{ins.line}: RUN requires at least one argument")
        return argv

    async def _run_container(
        self,
        ins: Instruction,
        state: State,
        stage_args: dict[str, str],
        argv: list[str],
        mounts: list[dict[str, str]],
        layer: list[Layer],
    ) -> AsyncIterator[Any]:
        """Run the step's container, showing its output; its changes' layer is put in
        `layer`. A failed command's container is left for a look unless --force-rm."""
        network = ins.flags.get("network", "") or self.opts.network
        env = [f"{k}={v}" for k, v in stage_args.items()]
        env += [
            f"{k}={v}"
            for k, v in self.opts.buildargs.items()
            if k in PROXY_ARGS and v is not None and k not in stage_args
        ]
        host_mounts = await asyncio.to_thread(self._run_mounts, mounts, ins)
        runner = self.b.containers
        cid = await runner.create(
            StepSpec(
                image=state.image_id or "",
                argv=argv,
                env=env,
                network=network,
                mounts=host_mounts,
                extra_hosts=self.opts.extra_hosts,
            )
        )
        yield self.say(f" ---> Running in {cid[:12]}\n")
        keep = False
        try:
            await runner.start(cid)
            async for data in runner.output(cid):
                yield self.say(data.decode(errors="replace"))
            code = await runner.wait(cid)
            if code != 0:
                # left for a look, as Docker's classic builder does, unless --force-rm
                keep = not self.opts.forcerm
                raise BuildError(
                    f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code
                )
            c = runner.layer(cid)
            exclude = set(c.mount_points) | {m.target.strip("/") for m in host_mounts}
            layer.append(
                await asyncio.to_thread(
                    self.b.images.layer_from_diff,
                    c.upper,
                    c.lowers,
                    exclude,
                    state.layers[-1] if state.layers else None,
                )
            )
        finally:
            if not keep and (self.opts.rm or self.opts.forcerm):
                with contextlib.suppress(BerthError):
                    await runner.remove(cid)
        if self.opts.rm:
            yield self.say(f" ---> Removed intermediate container {cid[:12]}\n")

    def _entitled(self, name: str, ins: Instruction) -> None:
        """BuildKit's two-sided grant: the build asks for it and the daemon allows it; the
        errors in BuildKit's words."""
        where = f"{self.filename}:{ins.line}"
        if name not in self.opts.allow:
            raise BuildError(
                f"{where}: {name} is not allowed (RUN --network=host needs "
                f"`berth build --allow {name}`)"
            )
        if name not in self.b.entitlements:
            raise BuildError(
                f"{where}: granting entitlement {name} is not allowed by build "
                f"daemon configuration (berthd --allow-insecure-entitlement {name})"
            )

    def _run_mounts(self, mounts: list[dict[str, str]], ins: Instruction) -> list[StepMount]:
        out = []
        where = f"{self.filename}:{ins.line}"
        for m in mounts:
            typ = m.get("type", "bind")
            target = m.get("target") or m.get("dst") or m.get("destination") or ""
            if typ == "secret":
                secret = self._secret_mount(m, target, where)
                if secret is not None:
                    out.append(secret)
                continue
            if not target:
                raise BuildError(f"{where}: mount of type {typ} needs a target")
            if typ == "tmpfs":
                out.append(StepMount(type="tmpfs", target=target))
            elif typ == "cache":
                out.append(self._cache_mount(m, target))
            elif typ == "bind":
                out.append(self._bind_mount(m, target, where))
            else:
                raise BuildError(f"{where}: unsupported mount type {typ!r}")
        return out

    def _secret_mount(self, m: dict[str, str], target: str, where: str) -> StepMount | None:
        """A secret of the build (--secret) as a read-only file; None for a missing one that
        is not required."""
        sid = m.get("id") or os.path.basename(target)
        target = target or f"/run/secrets/{sid}"
        if sid not in self.opts.secrets:
            if m.get("required") in ("true", "1", ""):
                raise BuildError(f"{where}: secret {sid} not found")
            return None
        path = os.path.join(self.tmp, f"secret-{secrets.token_hex(4)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(self.opts.secrets[sid])
        return StepMount(type="bind", source=path, target=target, read_only=True)

    def _cache_mount(self, m: dict[str, str], target: str) -> StepMount:
        """A directory that outlives the build, by id (or target), made with the mount's
        mode and owner the first time."""
        cid = m.get("id") or target
        d = os.path.join(self.b.cache_mounts, hashlib.sha256(cid.encode()).hexdigest()[:32])
        if not os.path.isdir(d):
            os.makedirs(d)
            os.chmod(d, int(m.get("mode", "755"), 8))
            os.chown(d, int(m.get("uid", "0")), int(m.get("gid", "0")))
        return StepMount(type="bind", source=d, target=target, read_only=False)

    def _bind_mount(self, m: dict[str, str], target: str, where: str) -> StepMount:
        """A file or directory of the context or of a stage (from=), copied to the build's
        scratch directory first."""
        rw = m.get("rw", m.get("readwrite", "false")) in ("true", "1", "")
        source = m.get("source", m.get("src", ""))
        if m.get("from"):
            # the source is followed inside the stage's tree, never to a host path:
            # a symlink there must not make the bind mount reach the host
            tree = LayersTree(self._source_view(m["from"]))
            rel = resolve(tree, posixpath.normpath("/" + source).lstrip("/"))
            if tree.get(rel) is None:
                raise BuildError(f"{where}: bind mount source {source}: not found in {m['from']}")
            src = os.path.join(self.tmp, f"bind-{secrets.token_hex(4)}")
            tree.materialize(rel, src)
        else:
            rel = resolve(self.ctx, posixpath.normpath("/" + source).lstrip("/"))
            if self.ctx.get(rel) is None:
                raise BuildError(
                    f"{where}: bind mount source {source}: not found in the build context"
                )
            src = os.path.join(self.tmp, f"bind-{secrets.token_hex(4)}")
            self.ctx.materialize(rel, src)
        return StepMount(type="bind", source=src, target=target, read_only=not rw)


__all__ = ["RunStep"]
