"""The CRI against hostile input that needs no daemon: an image's config values that reach
kubelets' messages, a CNI plug-in's output, a log directory a pod can write in, ExecSync's
output. Each test aims at what would break (a node-wide RPC, the daemon's memory, a host
path)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from berth.cri.images import ImageHandlers, _user


class _Images:
    def __init__(self, user: Any) -> None:
        self.user = user

    def get(self, _id: str) -> Any:
        return SimpleNamespace(container_config={"User": self.user})


@pytest.mark.parametrize(
    ("user", "uid", "name"),
    [
        ("1000", 1000, ""),
        ("0:0", 0, ""),
        ("4294967295", 4294967295, ""),
        ("4294967296", None, "4294967296"),  # past a uid: a name, which kubelets do not trust
        ("99999999999999999999999", None, "99999999999999999999999"),
        ("²", None, "²"),  # str.isdigit() says yes, int() says no
        ("١٠٠٠", None, "١٠٠٠"),  # Arabic-Indic digits: int() takes them, a kernel does not
        ("-1", None, "-1"),
        ("\ud800", None, "?"),  # not UTF-8: protobuf refuses the string
        ("x" * 100_000, None, "x" * 256),
    ],
)
def test_an_image_user_never_breaks_the_image_messages(user: str, uid: Any, name: str) -> None:
    assert _user({"User": user}) == (uid, name)
    h = ImageHandlers(_Images(user), None, "")  # type: ignore[arg-type]
    msg = h._message("sha256:" + "a" * 64, [], [], 1)
    msg.SerializeToString()
    assert (msg.uid.value if msg.HasField("uid") else None) == uid
    assert msg.username == name
