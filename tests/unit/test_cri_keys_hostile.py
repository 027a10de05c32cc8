"""The CRI's own keys (`io.berth.cri.*`) come from the CRI alone: an Engine API client's create
that gives them as annotations is a 400 (they name namespaces to join by /proc/PID/ns/*), and an
image labelled with them does not make its container a pod's container (review rows L6, L7)."""

from __future__ import annotations

from typing import Any

import pytest

from berth.api.containers_wire import create_request
from berth.containers.bundle import CRI_IPCNS, CRI_NETNS, CRI_PIDNS
from berth.containers.create import CRI_PREFIX, CreateRequest, container_config, image_labels
from berth.containers.settings import ContainerConfig
from berth.cri import containers as cc
from berth.errors import InvalidArgument
from berth.images import RunConfig


def _body(annotations: dict[str, Any]) -> dict[str, Any]:
    return {"Image": "busybox", "HostConfig": {"Annotations": annotations}}


@pytest.mark.parametrize(
    "key, value",
    [
        (CRI_NETNS, "/proc/1/ns/net"),  # the host's network, around --network's checks
        (CRI_IPCNS, "/proc/1/ns/ipc"),
        (CRI_PIDNS, "/proc/1/ns/pid"),
        ("io.berth.cri.netns", "/proc/4242/ns/net"),  # a pod's
        ("io.berth.cri.anything-later", "x"),  # any key of the CRI's, also one not read yet
    ],
)
def test_api_client_cannot_give_cri_annotations(key: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=r"io\.berth\.cri\. prefix is the CRI's own"):
        create_request(_body({"other": "1", key: value}))


def test_api_client_keeps_its_own_annotations() -> None:
    req = create_request(_body({"io.berth.crio": "1", "io.kubernetes.cri.x": "2", "a": "b"}))
    assert req.host_config.annotations == {
        "io.berth.crio": "1",
        "io.kubernetes.cri.x": "2",
        "a": "b",
    }


def test_the_namespace_annotations_are_under_the_refused_prefix() -> None:
    assert cc.PREFIX == CRI_PREFIX
    for key in (CRI_NETNS, CRI_IPCNS, CRI_PIDNS, cc.L_SANDBOX, cc.L_NAME, cc.L_ANNOTATIONS):
        assert key.startswith(CRI_PREFIX)


HOSTILE_IMAGE_LABELS = {
    cc.L_SANDBOX: "f" * 64,
    cc.L_NAME: "victim",
    cc.L_LOG: "/etc/shadow",
    "org.opencontainers.image.title": "kept",
    "io.berth.crio": "kept too",
}


def test_image_cannot_label_its_container_a_pods() -> None:
    image = RunConfig(labels=HOSTILE_IMAGE_LABELS, cmd=("sh",))
    cfg = container_config(
        CreateRequest(config=ContainerConfig(image="img", labels={"mine": "1"})), image, "c1"
    )
    assert cfg.labels == {
        "org.opencontainers.image.title": "kept",
        "io.berth.crio": "kept too",
        "mine": "1",
    }
    assert not any(k.startswith(CRI_PREFIX) for k in cfg.labels)


def test_image_labels_keep_all_but_the_cris() -> None:
    assert image_labels(None) == {}
    assert image_labels({"a": "1", "io.berth.cri.x": "2"}) == {"a": "1"}


def test_the_cris_own_labels_still_reach_its_container() -> None:
    # a client's (here the CRI's own create body) labels are not filtered: only the image's
    image = RunConfig(labels={cc.L_SANDBOX: "image's"}, cmd=("sh",))
    cfg = container_config(
        CreateRequest(config=ContainerConfig(image="img", labels={cc.L_SANDBOX: "pod"})),
        image,
        "c1",
    )
    assert cfg.labels == {cc.L_SANDBOX: "pod"}
