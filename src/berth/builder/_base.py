"""What the steps of one build share (the parts of `build._Run` that run.py and files.py use).

Imports `images`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from berth.builder.cache import StepCache
from berth.builder.cache import key as cache_key
from berth.builder.context import TarContext
from berth.builder.shell import Lexer
from berth.builder.state import BuildError, Message, Options, State
from berth.errors import NotFound
from berth.images import Layer, LayerView, rfc3339

if TYPE_CHECKING:
    from berth.builder.build import Builder


class StepContext:
    """One build's state and the helpers every kind of step uses."""

    b: Builder
    opts: Options
    ctx: TarContext
    tmp: str  # the build's scratch directory
    filename: str  # the Dockerfile's name, for errors
    lexer: Lexer
    cache: StepCache
    stage_images: dict[int, State]  # the stages built so far, by index
    _stage_names: dict[int, str]

    def say(self, text: str) -> Message:
        return {"stream": text}

    def _env(self, state: State, stage_args: dict[str, str]) -> dict[str, str]:
        env = dict(stage_args)
        for e in state.cfg.get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    def _state_of(self, image_id: str) -> State:
        img = self.b.images.get(image_id)
        return State(image_id, json.loads(json.dumps(img.config)), list(img.layers))

    def _from_cache(self, hit: str) -> list[Any]:
        """What a step found in the cache yields: the classic builder's two lines, then the
        cached image's state."""
        return [
            self.say(" ---> Using cache\n"),
            self.say(f" ---> {hit[7:19]}\n"),
            self._state_of(hit),
        ]

    def _consult(
        self,
        state: State,
        shown: str,
        args: dict[str, str],
        files_hash: str,
        manifest: dict[str, str] | None,
    ) -> tuple[str, list[Any], bool]:
        """A step's look in the cache: its key, what it yields (the cached image's lines, or
        why it missed), and whether it hit."""
        key = cache_key(state.parent_key, shown, args, files_hash)
        hit = self.cache.lookup(key)
        if hit:
            return key, self._from_cache(hit), True
        why = self.cache.why(state.parent_key, shown, args, manifest)
        return key, [self.say(f" ---> Not in the cache: {why}\n")], False

    async def _commit_config(
        self, state: State, shown: str, layer: Layer | None = None, created_by: str | None = None
    ) -> State:
        now = time.time()
        cfg = json.loads(json.dumps(state.config))
        cfg["created"] = rfc3339(now)
        layers = list(state.layers)
        if layer is not None:
            layers.append(layer.chain_id)
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            cfg["rootfs"] = {
                "type": "layers",
                "diff_ids": list(cfg["rootfs"].get("diff_ids") or []) + [layer.diff_id],
            }
        hist: dict[str, Any] = {
            "created": rfc3339(now),
            "created_by": created_by or f"/bin/sh -c #(nop)  {shown}",
        }
        if layer is None:
            hist["empty_layer"] = True
        if shown or layer is not None:
            cfg["history"] = list(cfg.get("history") or []) + [hist]
        cfg.pop("container", None)
        image_id = await asyncio.to_thread(self.b.images._commit_image, cfg, layers, [])
        return State(image_id, cfg, layers)

    def _source_view(self, ref: str) -> LayerView:
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
                raise BuildError(
                    f"invalid from flag value {ref}: no stage or image of that name"
                ) from None
            layers = img.layers
        return self.b.images.layer_view(layers)


__all__ = ["StepContext"]
