"""Layer extraction refuses or contains hostile archives; whiteouts become overlay whiteouts."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.content import ContentStore
from berth.errors import InvalidArgument
from berth.storage import LayerStore, merged_entries

pytestmark = pytest.mark.root  # chown, mknod and trusted.* xattrs need root


def _tar(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as tf:
        for e in entries:
            if isinstance(e, tuple):
                e[0].size = len(e[1])
                tf.addfile(e[0], io.BytesIO(e[1]))
            else:
                tf.addfile(e)
    b.seek(0)
    return b


def _info(
    name: str, typ: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.linkname = link
    ti.mode = mode
    return ti


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(str(tmp_path / "s"), ContentStore(str(tmp_path / "c")))


def _no_half_layers(store: LayerStore) -> None:
    assert [n for n in os.listdir(store.layers_dir) if n.startswith("tmp-")] == []
    assert os.listdir(os.path.join(store.content.root, "ingest")) == []


def test_dotdot_is_refused(store: LayerStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="escapes the layer"):
        store.create(_tar((_info("../../../tmp/evil"), b"x")), None)
    _no_half_layers(store)


def test_absolute_names_are_contained(store: LayerStore) -> None:
    layer = store.create(_tar((_info("/etc/contained"), b"x")), None)
    assert (Path(layer.path) / "etc" / "contained").read_bytes() == b"x"
    assert not Path("/etc/contained").exists()


def test_write_through_symlink_is_refused(store: LayerStore, tmp_path: Path) -> None:
    target = tmp_path / "outside"
    target.mkdir()
    with pytest.raises(InvalidArgument, match="symlink is never followed"):
        store.create(
            _tar(_info("link", tarfile.SYMTYPE, str(target)), (_info("link/pwned"), b"x")), None
        )
    assert list(target.iterdir()) == []
    _no_half_layers(store)


def test_hardlink_to_outside_is_refused(store: LayerStore) -> None:
    with pytest.raises(InvalidArgument, match="not in the layer"):
        store.create(_tar(_info("passwd", tarfile.LNKTYPE, "/etc/passwd")), None)
    with pytest.raises(InvalidArgument, match="escapes the layer"):
        store.create(_tar(_info("p2", tarfile.LNKTYPE, "../../etc/passwd")), None)
    _no_half_layers(store)


def test_modes_owners_setuid_devices_and_links(store: LayerStore) -> None:
    su = _info("bin/su", mode=0o4755)
    su.uid, su.gid = 0, 0
    owned = _info("home/app/file", mode=0o600)
    owned.uid, owned.gid = 1000, 1000
    dev = _info("dev/null", tarfile.CHRTYPE, mode=0o666)
    dev.devmajor, dev.devminor = 1, 3
    layer = store.create(
        _tar(
            (su, b"#!"),
            (owned, b"secret"),
            dev,
            _info("bin/su2", tarfile.LNKTYPE, "bin/su"),
            _info("dangling", tarfile.SYMTYPE, "/nowhere"),
        ),
        None,
    )
    root = Path(layer.path)
    assert stat.S_IMODE(os.stat(root / "bin/su").st_mode) == 0o4755
    st = os.stat(root / "home/app/file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o600)
    assert stat.S_ISCHR(os.stat(root / "dev/null").st_mode)
    assert os.stat(root / "bin/su2").st_ino == os.stat(root / "bin/su").st_ino
    assert os.readlink(root / "dangling") == "/nowhere"


def test_whiteouts_and_opaque_dirs(store: LayerStore) -> None:
    base = store.create(
        _tar((_info("a/keep"), b"1"), (_info("a/gone"), b"2"), (_info("d/old"), b"3")), None
    )
    top = store.create(
        _tar(
            _info("a/.wh.gone"),
            _info("d", tarfile.DIRTYPE, mode=0o755),
            _info("d/.wh..wh..opq"),
            (_info("d/new"), b"4"),
        ),
        base.chain_id,
    )
    t = Path(top.path)
    st = os.lstat(t / "a" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(t / "d", "trusted.overlay.opaque") == b"y"
    merged = dict(merged_entries([top.path, base.path]))
    assert "a/keep" in merged and "a/gone" not in merged
    assert "d/new" in merged and "d/old" not in merged


def test_same_content_is_one_layer(store: LayerStore) -> None:
    data = _tar((_info("f"), b"same")).getvalue()
    a = store.create(io.BytesIO(data), None)
    b = store.create(io.BytesIO(data), None)
    assert a.chain_id == b.chain_id and store.list() == [a.chain_id]
