"""`berth compose watch`: the `develop.watch` rules of a project's services, applied as files
change: `sync` copies changed files into the running containers (and deletes what was
deleted), `restart` restarts them, `sync+restart` does both, `sync+exec` runs a command after
the copy, `rebuild` builds the image and recreates the service. Changes are found by polling
(stat of every watched file, a bounded number of them), which needs no inotify.

Imports `dockerignore` and the compose modules below it.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from berth.compose.model import Service, WatchAction, WatchRule
from berth.compose.orchestrator import ComposeError, Orchestrator, UpOptions
from berth.dockerignore import Matcher

MAX_FILES = 100_000
# what docker compose never watches
DEFAULT_IGNORE = (".git", "*.swp", "*~", ".DS_Store")

Snapshot = dict[str, tuple[int, int, int]]  # rel path -> (mtime_ns, size, mode)


@dataclass(frozen=True, slots=True)
class Change:
    service: str
    rule: WatchRule
    changed: tuple[str, ...]  # relative paths, added or modified
    deleted: tuple[str, ...]


def scan(rule: WatchRule) -> Snapshot:
    """The watched files of a rule (a file or a directory tree), as (mtime, size, mode)."""
    ignore = Matcher([*DEFAULT_IGNORE, *rule.ignore])
    include = Matcher(list(rule.include)) if rule.include else None
    out: Snapshot = {}
    try:
        st = os.lstat(rule.path)
    except FileNotFoundError:
        return out
    if not stat.S_ISDIR(st.st_mode):
        return {"": (st.st_mtime_ns, st.st_size, st.st_mode)}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(rule.path, rel_dir)) as it:
                entries = list(it)
        except OSError:
            continue
        for ent in entries:
            rel = f"{rel_dir}/{ent.name}" if rel_dir else ent.name
            if ignore.excluded(rel):
                continue
            try:
                est = ent.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(est.st_mode):
                stack.append(rel)
                continue
            if include is not None and not include.excluded(rel):
                continue  # `include` patterns select: a match "excludes" from the ignore
            out[rel] = (est.st_mtime_ns, est.st_size, est.st_mode)
            if len(out) > MAX_FILES:
                raise ComposeError(f"watch: more than {MAX_FILES} files under {rule.path}")
    return out


def diff(before: Snapshot, after: Snapshot) -> tuple[tuple[str, ...], tuple[str, ...]]:
    changed = tuple(sorted(k for k, v in after.items() if before.get(k) != v))
    deleted = tuple(sorted(k for k in before if k not in after))
    return changed, deleted


def sync_tar(rule: WatchRule, changed: tuple[str, ...]) -> bytes:
    """The changed files as a tar whose paths are their place in the container."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for rel in changed:
            src = os.path.join(rule.path, rel) if rel else rule.path
            dst = os.path.join(rule.target, rel) if rel else rule.target
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                continue
            ti = tarfile.TarInfo(dst.lstrip("/"))
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.mtime = int(st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(src)
                tf.addfile(ti)
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(src, "rb") as f:
                        ti.size = os.fstat(f.fileno()).st_size
                        tf.addfile(ti, f)  # streamed, not read whole into memory
                except (OSError, tarfile.TarError):
                    continue  # changed or gone while copied: the next poll sees it again
    return buf.getvalue()


class Watcher:
    def __init__(
        self,
        orch: Orchestrator,
        services: list[str],
        log: Callable[[str], None],
        interval: float = 0.5,
    ) -> None:
        self.o = orch
        self.log = log
        self.interval = interval
        self.rules = [
            (n, r)
            for n in (services or sorted(orch.project.services))
            for r in orch.project.services[n].watch
        ]
        if not self.rules:
            raise ComposeError(
                "none of the selected services is configured for watch, "
                "consider setting a 'develop' section"
            )
        for _, r in self.rules:
            if r.action is WatchAction.SYNC_EXEC and not r.exec_command:
                raise ComposeError(f"watch: {r.path}: sync+exec needs exec.command")
        self.snapshots = [scan(r) for _, r in self.rules]

    def poll(self) -> list[Change]:
        changes = []
        for i, (name, rule) in enumerate(self.rules):
            now = scan(rule)
            changed, deleted = diff(self.snapshots[i], now)
            self.snapshots[i] = now
            if changed or deleted:
                changes.append(Change(name, rule, changed, deleted))
        return changes

    def apply(self, change: Change) -> None:
        svc: Service = self.o.project.services[change.service]
        rule = change.rule
        action = rule.action
        if action is WatchAction.REBUILD:
            self.log(f"Rebuilding service {svc.name!r} after changes were detected")
            self.o.build(svc)
            self.o.up(UpOptions(services=[svc.name], no_deps=True))
            return
        containers = self.o.containers([svc.name], all=False)
        if action in (WatchAction.SYNC, WatchAction.SYNC_RESTART, WatchAction.SYNC_EXEC):
            tar = sync_tar(rule, change.changed) if change.changed else b""
            gone = [
                os.path.join(rule.target, rel) if rel else rule.target for rel in change.deleted
            ]
            for c in containers:
                if tar:
                    self.o.engine.put_archive(c.id, "/", tar)
                if gone:
                    self.o.engine.exec_detached(c.id, ["rm", "-rf", "--", *gone])
            self.log(
                f"Syncing service {svc.name!r} after {len(change.changed)} changed and "
                f"{len(change.deleted)} deleted file(s) were detected"
            )
        if action in (WatchAction.RESTART, WatchAction.SYNC_RESTART):
            for c in containers:
                self.o.engine.restart(c.id)
            self.log(f"Restarted service {svc.name!r}")
        if action is WatchAction.SYNC_EXEC:
            for c in containers:
                self.o.engine.exec_detached(c.id, list(rule.exec_command))

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Polls until `stop()` says so (or Ctrl-C); changes within one poll are applied
        together."""
        self.log("Watch enabled")
        while not stop():
            time.sleep(self.interval)
            for change in self.poll():
                try:
                    self.apply(change)
                except ComposeError as e:
                    self.log(f"watch: {e}")


__all__ = ["Watcher", "Change", "scan", "diff", "sync_tar"]
