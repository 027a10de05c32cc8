"""berth.fs: the one root-confined resolver (by directory fd) and the fd-based writers, and the
merged view of layer directories built on it (berth.storage.merged). No root needed."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from berth import fs
from berth.linux import secure_join
from berth.metadata import MetadataStore
from berth.storage import MergedView, copy_into, merged_entries
from berth.volumes import VolumeService


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a directory, a file and symlinks of every kind; `outside` beside it holds a
    secret that nothing resolved inside the root may reach."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside")
    outside.mkdir()
    (outside / "passwd").write_text("SECRET")
    (root / "abs").symlink_to("/etc")  # absolute: the root's /etc
    (root / "rel").symlink_to("../../../../outside")  # .. never above the root
    (root / "host").symlink_to(str(outside))  # a host path: the root's own
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "etc" / "up").symlink_to("..")
    return root, outside


def _read(root: Path, path: str, **kw: object) -> bytes:
    rfd = fs.open_dir(str(root))
    try:
        fd = fs.open_beneath(rfd, path, os.O_RDONLY, **kw)  # type: ignore[arg-type]
        try:
            return os.read(fd, 100)
        finally:
            os.close(fd)
    finally:
        os.close(rfd)


def test_resolves_inside_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert _read(root, "/etc/passwd") == b"inside"
    assert _read(root, "abs/passwd") == b"inside"
    assert _read(root, "etc/up/etc/up/abs/passwd") == b"inside"
    assert _read(root, "../../../etc/passwd") == b"inside"


def test_absolute_and_relative_escapes_stay_inside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    for path in ("rel/passwd", "host/passwd", "etc/../../outside/passwd"):
        with pytest.raises(FileNotFoundError):
            _read(root, path)
    (root / "outside").mkdir()
    (root / "outside" / "passwd").write_text("inside too")
    assert _read(root, "rel/passwd") == b"inside too"
    assert secure_join(str(root), "rel/passwd") == str(root / "outside" / "passwd")
    assert secure_join(str(root), "host/passwd") == str(root) + str(outside) + "/passwd"
    assert (outside / "passwd").read_text() == "SECRET"


def test_symlink_loops_end(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(OSError) as e:
        _read(root, "loop1/x")
    assert e.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        secure_join(str(root), "loop1")


def test_last_symlink_not_followed_on_request(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    rfd = fs.open_dir(str(root))
    try:
        fd = fs.open_beneath(rfd, "abs", follow=False)
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
        os.close(fd)
        with pytest.raises(OSError):  # O_NOFOLLOW on the last open
            fs.open_beneath(rfd, "abs", os.O_RDONLY, follow=False)
    finally:
        os.close(rfd)


def test_secure_join_keeps_missing_names(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert secure_join(str(root), "/abs/new/../x") == str(root / "etc" / "x")
    assert secure_join(str(root), "/") == str(root)
    assert secure_join(str(root), "etc/passwd/x") == str(root / "etc" / "passwd" / "x")
    with pytest.raises(NotADirectoryError):
        _read(root, "etc/passwd/x")


def test_symlink_swapped_in_mid_walk_is_not_followed_out(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once `etc` is open, a symlink to the host put in its place changes nothing: the walk
    goes on from the directory it holds, by fd."""
    root, outside = tree
    real_lookup = fs.FdWalker.lookup

    def lookup(self: fs.FdWalker, parent: int, name: str) -> int | None:
        fd = real_lookup(self, parent, name)
        if name == "etc":
            os.rename(root / "etc", root / "etc.old")
            (root / "etc").symlink_to(str(outside))
        return fd

    monkeypatch.setattr(fs.FdWalker, "lookup", lookup)
    assert _read(root, "etc/passwd") == b"inside"


def test_create_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").symlink_to(victim)
    (d / "sub").symlink_to(tmp_path)
    fd = fs.open_dir(str(d))
    try:
        with pytest.raises(FileExistsError):
            fs.create_at(fd, "f")
        with pytest.raises(OSError):
            fs.mkdir_at(fd, "sub")  # exists, and is not opened through the link
        with pytest.raises(ValueError):
            fs.create_at(fd, "../x")
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        fs.open_dir(str(d / "sub"))
    assert victim.read_text() == "keep"


# --- the merged view ---------------------------------------------------------------------------
def _layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The issue's image: a lower layer with /data/link/POC, a higher one where /data/link is a
    symlink to a host directory and /data/file replaces a directory that held files."""
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    (low / "data" / "link").mkdir(parents=True)
    (low / "data" / "link" / "POC").write_text("pwned")
    (low / "data" / "file").mkdir()
    (low / "data" / "file" / "under").write_text("x")
    (low / "data" / "keep").write_text("keep")
    (mid / "data").mkdir(parents=True)
    (mid / "data" / "link").symlink_to(str(tmp_path / "host"))
    (mid / "data" / "file").write_text("now a file")
    top.mkdir()
    (top / "data").mkdir()
    (top / "data" / "new").write_text("new")
    return top, mid, low


def test_merged_entries_hide_what_is_under_a_higher_non_directory(tmp_path: Path) -> None:
    top, mid, low = _layers(tmp_path)
    merged = dict(merged_entries([str(top), str(mid), str(low)]))
    assert sorted(merged) == ["data", "data/file", "data/keep", "data/link", "data/new"]
    assert merged["data/link"] == str(mid / "data" / "link")
    assert merged["data/keep"] == str(low / "data" / "keep")


def test_merged_view_lookup_and_resolve(tmp_path: Path) -> None:
    top, mid, low = _layers(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "POC").write_text("host file")
    with MergedView([str(top), str(mid), str(low)]) as v:
        assert v.lookup("data/link/POC") is None
        assert v.resolve("data/link/POC") is None  # the link leads to the image's own path
        n = v.lookup("data/link")
        assert n is not None and stat.S_ISLNK(n.st.st_mode)
        n.close()
        n = v.resolve("data/keep")
        assert n is not None
        fd = v.open(n)
        assert os.read(fd, 10) == b"keep"
        os.close(fd)
        n.close()


def test_copy_into_writes_only_inside(tmp_path: Path) -> None:
    top, mid, low = _layers(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    dest = tmp_path / "vol"
    dest.mkdir()
    fd = fs.open_dir(str(dest))
    with MergedView([str(top), str(mid), str(low)]) as v:
        n = v.resolve("/data")
        assert n is not None
        copy_into(v, n, fd)
        n.close()
    os.close(fd)
    assert os.listdir(host) == []
    assert sorted(os.listdir(dest)) == ["file", "keep", "link", "new"]
    assert os.readlink(dest / "link") == str(host)
    assert (dest / "file").read_text() == "now a file"


def test_merged_view_whiteouts_and_opaque(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("whiteouts (0:0 device nodes) and trusted xattrs need root")
    low, top = tmp_path / "low", tmp_path / "top"
    (low / "a").mkdir(parents=True)
    (low / "a" / "gone").write_text("1")
    (low / "a" / "kept").write_text("2")
    (low / "o").mkdir()
    (low / "o" / "old").write_text("3")
    (top / "a").mkdir(parents=True)
    os.mknod(top / "a" / "gone", stat.S_IFCHR | 0o600, 0)
    (top / "o").mkdir()
    os.setxattr(top / "o", "trusted.overlay.opaque", b"y")
    (top / "o" / "new").write_text("4")
    assert sorted(dict(merged_entries([str(top), str(low)]))) == ["a", "a/kept", "o", "o/new"]


# --- volume copy-up ----------------------------------------------------------------------------
def _volumes(tmp_path: Path) -> VolumeService:
    return VolumeService(MetadataStore(str(tmp_path / "meta.db")), str(tmp_path / "volumes"))


def test_copy_up_gives_the_kernels_view(tmp_path: Path) -> None:
    top, mid, low = _layers(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    vols = _volumes(tmp_path)
    v = vols.create("v1")
    vols.copy_up("v1", [str(top), str(mid), str(low)], "/data")
    data = Path(v.mountpoint)
    assert sorted(os.listdir(data)) == ["file", "keep", "link", "new"]
    assert os.listdir(host) == []


def test_copy_up_never_follows_a_symlinked_volume_dir(tmp_path: Path) -> None:
    top, mid, low = _layers(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    vols = _volumes(tmp_path)
    v = vols.create("v2")
    data = Path(v.mountpoint)
    data.rmdir()
    data.symlink_to(host)
    with pytest.raises(OSError):
        vols.copy_up("v2", [str(top), str(mid), str(low)], "/data")
    assert os.listdir(host) == []


def test_export_tar_is_the_kernels_view(tmp_path: Path) -> None:
    import io
    import tarfile

    from berth.storage import write_merged_tar

    top, mid, low = _layers(tmp_path)
    buf = io.BytesIO()
    write_merged_tar([str(top), str(mid), str(low)], buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
        assert sorted(members) == ["data", "data/file", "data/keep", "data/link", "data/new"]
        assert members["data/link"].issym() and members["data/link"].linkname.endswith("host")
        f = tf.extractfile(members["data/file"])
        assert f is not None and f.read() == b"now a file"


def test_make_beneath_makes_mount_points_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "a" / "out").symlink_to(outside)  # an absolute link to a host dir
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        parent, name, target = fs.make_beneath(root_fd, "/a/out/x/y")
        os.close(parent)
        os.close(target)
        parent, name, target = fs.make_beneath(root_fd, "a/f", directory=False)
        assert name == "f" and (root / "a" / "f").is_file()
        os.close(parent)
        os.close(target)
        (root / "file").write_text("")
        with pytest.raises(NotADirectoryError):
            fs.make_beneath(root_fd, "file/x")
    finally:
        os.close(root_fd)
    assert list(outside.iterdir()) == []  # made inside: root/<outside>/x/y
    assert (root / str(outside).lstrip("/") / "x" / "y").is_dir()
