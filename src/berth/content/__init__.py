"""Content-addressed blob store: ingest to a temp file, verify, commit atomically, delete.

Imports `oci`, `errors`. Layout: ROOT/blobs/sha256/<hex>, ROOT/ingest/<random> while writing.
A blob path exists only for content that was verified against its digest.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from berth import oci
from berth.errors import InvalidArgument, NotFound


class Writer:
    """An open ingest: write(), then commit(expected) or abort()."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self.path = os.path.join(store.root, "ingest", secrets.token_hex(16))
        # a new file of ours (nothing planted at the name is followed), readable by root only
        fd = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        self._f: BinaryIO = open(fd, "wb")  # noqa: SIM115 - closed in commit/abort
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        d = self.digest
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        if expected is not None and expected != d:
            os.unlink(self.path)
            raise InvalidArgument(f"digest mismatch: expected {expected}, got {d}")
        os.rename(self.path, self._store.path(d))
        return d

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = root
        # blobs are the images' files: other local users have no business in them
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(root, "blobs", "sha256"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(root, "ingest"), mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        return os.path.join(self.root, "blobs", "sha256", oci.hex_of(digest))

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"no such blob: {digest}") from None

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"no such blob: {digest}") from None

    def put(self, data: bytes) -> str:
        d = oci.sha256_digest(data)
        if not self.exists(d):
            w = Writer(self)
            w.write(data)
            w.commit(d)
        return d

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        w = Writer(self)
        try:
            yield w
        finally:
            w.abort()  # no-op after a commit

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def list(self) -> list[str]:
        return ["sha256:" + h for h in os.listdir(os.path.join(self.root, "blobs", "sha256"))]

    def clean_ingest(self) -> None:
        """Drop half-written ingests (a daemon killed mid-import leaves them)."""
        d = os.path.join(self.root, "ingest")
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))


__all__ = ["ContentStore", "Writer"]
