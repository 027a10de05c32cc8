"""One SQLite database (WAL, one writer) for images, tags and containers.

Imports only `errors`. Each public method is one transaction. Records are stored as JSON
documents beside the indexed columns the queries need; the services own their shapes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from berth.errors import Conflict, NotFound, System

_MIGRATIONS = [
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,          -- sha256:<config digest>
        created INTEGER NOT NULL,     -- unix seconds
        doc TEXT NOT NULL             -- {"layers": [...chain ids], "size": N, ...}
    );
    CREATE TABLE tags (
        ref TEXT PRIMARY KEY,         -- docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id),
        created INTEGER NOT NULL
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        created INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        doc TEXT NOT NULL             -- Docker's volume shape: Driver, Labels, Options, ...
    );
    """,
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        doc TEXT NOT NULL             -- Docker's network shape
    );
    """,
    """
    CREATE TABLE digests (
        ref TEXT PRIMARY KEY,         -- docker.io/library/busybox@sha256:<manifest digest>
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX digests_image ON digests(image_id);
    CREATE TABLE blob_sources (
        diff_id TEXT NOT NULL,        -- sha256 of the uncompressed layer
        digest TEXT NOT NULL,         -- the compressed blob a registry holds
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        repository TEXT NOT NULL,     -- host/path where it was seen
        PRIMARY KEY (diff_id, digest, repository)
    );
    """,
    """
    CREATE TABLE build_cache (
        key TEXT NOT NULL,            -- sha256 of (parent, instruction, build args, files)
        parent TEXT NOT NULL,         -- the image the step ran on ("scratch" for none)
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        created INTEGER NOT NULL,
        doc TEXT NOT NULL,            -- {"instruction", "args", "files"}: to explain a miss
        PRIMARY KEY (key, image_id)
    );
    CREATE INDEX build_cache_parent ON build_cache(parent);
    CREATE INDEX build_cache_image ON build_cache(image_id);
    """,
]


def _private(path: str) -> None:
    """The database holds every container's environment: 0600, and so are its -wal and -shm,
    which SQLite creates with the database's own mode. A database from before is closed too."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise System(f"{path}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


class MetadataStore:
    def __init__(self, path: str) -> None:
        _private(path)
        # the daemon calls this from its loop thread and from worker threads (to_thread)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash; fsync at checkpoints
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for i, sql in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self.tx() as c:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(f"PRAGMA user_version={i}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # images
    def put_image(
        self,
        image_id: str,
        created: int,
        doc: dict[str, Any],
        tags: list[str] = (),  # type: ignore[assignment]
    ) -> list[tuple[str, str]]:
        """Insert the image and move `tags` to it; returns the (ref, old image) tags moved."""
        moved: list[tuple[str, str]] = []
        with self.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO images(id, created, doc) VALUES (?,?,?)",
                (image_id, created, json.dumps(doc)),
            )
            for ref in tags:
                row = c.execute("SELECT image_id FROM tags WHERE ref=?", (ref,)).fetchone()
                if row and row[0] != image_id:
                    moved.append((ref, row[0]))
                c.execute(
                    "INSERT OR REPLACE INTO tags(ref, image_id, created) VALUES (?,?,?)",
                    (ref, image_id, created),
                )
        return moved

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc, created FROM images WHERE id=?", (image_id,)).fetchone()
        if not row:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        doc["created"] = row[1]
        return doc

    def image_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM images ORDER BY created DESC")]

    def images(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for i, doc, created in self._db.execute(
            "SELECT id, doc, created FROM images ORDER BY created DESC, id"
        ):
            d = json.loads(doc)
            d["created"] = created
            out.append((i, d))
        return out

    def delete_image(self, image_id: str) -> None:
        with self.tx() as c:
            if c.execute("SELECT 1 FROM tags WHERE image_id=?", (image_id,)).fetchone():
                raise Conflict(f"image {image_id} is still tagged")
            c.execute("DELETE FROM images WHERE id=?", (image_id,))

    def resolve_id_prefix(self, prefix: str) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM images WHERE id LIKE ? LIMIT 2", ("sha256:" + prefix + "%",)
            )
        ]

    # tags
    def tag(self, ref: str, image_id: str, created: int) -> str | None:
        with self.tx() as c:
            if not c.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone():
                raise NotFound(f"No such image: {image_id}")
            row = c.execute("SELECT image_id FROM tags WHERE ref=?", (ref,)).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO tags(ref, image_id, created) VALUES (?,?,?)",
                (ref, image_id, created),
            )
        return row[0] if row and row[0] != image_id else None

    def untag(self, ref: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM tags WHERE ref=?", (ref,))

    def tag_target(self, ref: str) -> str | None:
        row = self._db.execute("SELECT image_id FROM tags WHERE ref=?", (ref,)).fetchone()
        return row[0] if row else None

    def tags_of(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT ref FROM tags WHERE image_id=? ORDER BY created, ref", (image_id,)
            )
        ]

    def all_tags(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ref, image_id in self._db.execute(
            "SELECT ref, image_id FROM tags ORDER BY created, ref"
        ):
            out.setdefault(image_id, []).append(ref)
        return out

    # repository digests (what a registry called an image) and where layers' blobs live
    def put_digest(self, ref: str, image_id: str) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO digests(ref, image_id) VALUES (?,?)", (ref, image_id))

    def digest_target(self, ref: str) -> str | None:
        row = self._db.execute("SELECT image_id FROM digests WHERE ref=?", (ref,)).fetchone()
        return row[0] if row else None

    def digests_of(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT ref FROM digests WHERE image_id=? ORDER BY ref", (image_id,)
            )
        ]

    def delete_digest(self, ref: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM digests WHERE ref=?", (ref,))

    def add_blob_source(
        self, diff_id: str, digest: str, media_type: str, size: int, repository: str
    ) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO blob_sources VALUES (?,?,?,?,?)",
                (diff_id, digest, media_type, size, repository),
            )

    def blob_sources(self, diff_id: str) -> list[tuple[str, str, int, str]]:
        """(digest, media type, size, repository) of the compressed blobs known for a layer."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._db.execute(
                "SELECT digest, media_type, size, repository FROM blob_sources WHERE diff_id=?",
                (diff_id,),
            )
        ]

    # the build cache: which image a build step made
    def put_cache(
        self, key: str, parent: str, image_id: str, created: int, doc: dict[str, Any]
    ) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO build_cache VALUES (?,?,?,?,?)",
                (key, parent, image_id, created, json.dumps(doc)),
            )

    def get_cache(self, key: str) -> list[str]:
        """The images a step with this key made, newest first."""
        return [
            r[0]
            for r in self._db.execute(
                "SELECT image_id FROM build_cache WHERE key=? ORDER BY created DESC, rowid DESC",
                (key,),
            )
        ]

    def cache_by_parent(self, parent: str) -> list[tuple[str, dict[str, Any]]]:
        """(image, doc) of the steps that ran on `parent`, newest first."""
        return [
            (r[0], json.loads(r[1]))
            for r in self._db.execute(
                "SELECT image_id, doc FROM build_cache WHERE parent=? ORDER BY created DESC",
                (parent,),
            )
        ]

    def cache_parent_of(self, image_id: str) -> str | None:
        row = self._db.execute(
            "SELECT parent FROM build_cache WHERE image_id=? LIMIT 1", (image_id,)
        ).fetchone()
        return row[0] if row else None

    def cache_children(self) -> set[str]:
        """Images some other cached step ran on (intermediate images with children)."""
        return {r[0] for r in self._db.execute("SELECT DISTINCT parent FROM build_cache")}

    def cache_images(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT image_id FROM build_cache")}

    def clear_cache(self) -> int:
        with self.tx() as c:
            return c.execute("DELETE FROM build_cache").rowcount

    # containers
    def put_container(
        self, cid: str, name: str, image_id: str, created: int, doc: dict[str, Any]
    ) -> None:
        with self.tx() as c:
            if c.execute("SELECT 1 FROM containers WHERE name=? AND id!=?", (name, cid)).fetchone():
                raise Conflict(f'Conflict. The container name "/{name}" is already in use')
            c.execute(
                "INSERT OR REPLACE INTO containers(id, name, image_id, created, doc) "
                "VALUES (?,?,?,?,?)",
                (cid, name, image_id, created, json.dumps(doc)),
            )

    def containers(self) -> list[dict[str, Any]]:
        return [
            json.loads(r[0])
            for r in self._db.execute("SELECT doc FROM containers ORDER BY created DESC")
        ]

    def delete_container(self, cid: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM containers WHERE id=?", (cid,))

    # volumes
    def put_volume(
        self, name: str, created: int, doc: dict[str, Any], *, exclusive: bool = False
    ) -> bool:
        """Store a volume; with `exclusive`, False if one of that name exists already."""
        with self.tx() as c:
            if exclusive and c.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone():
                return False
            c.execute(
                "INSERT OR REPLACE INTO volumes(name, created, doc) VALUES (?,?,?)",
                (name, created, json.dumps(doc)),
            )
        return True

    def get_volume(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM volumes WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def volumes(self) -> list[dict[str, Any]]:
        return [
            json.loads(r[0])
            for r in self._db.execute("SELECT doc FROM volumes ORDER BY created, name")
        ]

    def delete_volume(self, name: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM volumes WHERE name=?", (name,))

    # networks
    def put_network(self, nid: str, name: str, doc: dict[str, Any]) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO networks(id, name, doc) VALUES (?,?,?)",
                (nid, name, json.dumps(doc)),
            )

    def networks(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT doc FROM networks")]

    def delete_network(self, nid: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM networks WHERE id=?", (nid,))


__all__ = ["MetadataStore"]
