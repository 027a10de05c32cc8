"""The layer cache: a step reuses the image an earlier build made from the same parent with the
same instruction, build args and (COPY, ADD) copied files; a step that misses says why.

Imports `images`. The cache's rows live in the image metadata (`CacheStore`), keyed by a hash
of those four things; each row also keeps them, so that a miss can be explained by comparing
with the steps that ran on the same parent before.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Protocol

from berth.builder.state import PROXY_ARGS
from berth.errors import NotFound
from berth.images import ImageService


class CacheStore(Protocol):
    """Where the cache's rows are kept (berth.metadata.MetadataStore)."""

    def get_cache(self, key: str) -> list[str]: ...
    def cache_by_parent(self, parent: str) -> list[tuple[str, dict[str, Any]]]: ...
    def cache_parent_of(self, image_id: str) -> str | None: ...
    def put_cache(
        self, key: str, parent: str, image_id: str, created: int, doc: dict[str, Any]
    ) -> None: ...
    def get_image(self, image_id: str) -> dict[str, Any] | None: ...
    def clear_cache(self) -> int: ...


def key(parent: str, instruction: str, args: dict[str, str], files: str) -> str:
    blob = json.dumps([parent, instruction, sorted(args.items()), files])
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_args(stage_args: dict[str, str]) -> dict[str, str]:
    """The build args a step's key holds: the proxy variables are left out, as Docker does."""
    return {k: v for k, v in stage_args.items() if k not in PROXY_ARGS}


class StepCache:
    """The cache as one build sees it: off with --no-cache, limited to the history of the
    --cache-from images where some are named."""

    def __init__(self, store: CacheStore, *, nocache: bool) -> None:
        self.store = store
        self.nocache = nocache
        self.allowed: set[str] | None = None
        # whether the step before missed: a miss then is explained by its parent
        self.missed_before = False

    def allow_history_of(self, images: ImageService, names: list[str]) -> None:
        allowed: set[str] = set()
        for name in names:
            try:
                cur: str | None = images.resolve(name).id
            except NotFound:
                continue
            while cur and cur not in allowed and not cur.startswith("scratch:"):
                allowed.add(cur)
                cur = self.store.cache_parent_of(cur)
        self.allowed = allowed

    def lookup(self, key: str) -> str | None:
        if self.nocache:
            return None
        for image_id in self.store.get_cache(key):
            if self.allowed is not None and image_id not in self.allowed:
                continue
            if self.store.get_image(image_id) is None:
                continue
            self.missed_before = False
            return image_id
        return None

    def why(
        self, parent: str, instruction: str, args: dict[str, str], files: dict[str, str] | None
    ) -> str:
        try:
            return self._reason(parent, instruction, args, files)
        finally:
            self.missed_before = True

    def _reason(
        self, parent: str, instruction: str, args: dict[str, str], files: dict[str, str] | None
    ) -> str:
        if self.nocache:
            return "--no-cache"
        if self.allowed is not None:
            return "not in the history of the --cache-from images"
        earlier = self.store.cache_by_parent(parent)
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
                for k in changed
            )
        if files is not None:
            old = d.get("files") or {}
            diff = sorted(p for p in set(old) | set(files) if old.get(p) != files.get(p))
            if diff:
                shown = ", ".join(
                    ("+" if p not in old else "-" if p not in files else "") + p for p in diff[:5]
                )
                more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
                return f"copied files changed: {shown}{more}"
        return "the cached image is gone"

    def remember(
        self,
        key: str,
        parent: str,
        image_id: str,
        instruction: str,
        args: dict[str, str],
        files: dict[str, str] | None,
    ) -> None:
        doc: dict[str, Any] = {"instruction": instruction, "args": args}
        if files is not None:
            doc["files"] = files
        self.store.put_cache(key, parent, image_id, int(time.time()), doc)


__all__ = ["CacheStore", "StepCache", "key", "cache_args"]
