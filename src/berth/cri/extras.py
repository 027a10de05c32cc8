"""The RuntimeService's and ImageService's thinner RPCs: the streamed lists (KEP 5825's
Stream* RPCs: each List RPC's items sent in messages of up to STREAM_CHUNK, none when there are
no items), the checkpoints berth refuses (its runtime has no checkpoint/restore: it does not
drive CRIU) and UpdatePodSandboxResources (the kubelet has already set the pod's cgroup).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from berth.cri.gen import api
from berth.cri.sandboxes import Pods
from berth.errors import NotImplemented_

STREAM_CHUNK = 100  # items per streamed message (well under gRPC's message size limit)

NO_CHECKPOINT = (
    "berth's runtime has no checkpoint/restore: it does not drive CRIU, so containers and pods "
    "cannot be checkpointed or restored"
)


class Extras:
    """Over the handler objects that serve the List RPCs (the first that has each)."""

    def __init__(self, pods: Pods, *impls: object) -> None:
        self.pods = pods
        self.impls = impls

    def _call(self, name: str) -> Any:
        for i in self.impls:
            fn = getattr(i, name, None)
            if fn is not None:
                return fn
        raise NotImplemented_(f"{name} is not served")

    async def _stream(
        self, list_rpc: str, list_req: Any, field: str, resp: str, out_field: str
    ) -> AsyncIterator[Any]:
        items = list(getattr(await self._call(list_rpc)(list_req), field))
        for i in range(0, len(items), STREAM_CHUNK):
            yield getattr(api(), resp)(**{out_field: items[i : i + STREAM_CHUNK]})

    @staticmethod
    def _filtered(req_type: str, req: Any) -> Any:
        r = getattr(api(), req_type)()
        if req.HasField("filter"):
            r.filter.CopyFrom(req.filter)
        return r

    def StreamPodSandboxes(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802 - the RPC's name
        return self._stream(
            "ListPodSandbox",
            self._filtered("ListPodSandboxRequest", req),
            "items",
            "StreamPodSandboxesResponse",
            "pod_sandboxes",
        )

    def StreamContainers(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        return self._stream(
            "ListContainers",
            self._filtered("ListContainersRequest", req),
            "containers",
            "StreamContainersResponse",
            "containers",
        )

    def StreamContainerStats(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        return self._stream(
            "ListContainerStats",
            self._filtered("ListContainerStatsRequest", req),
            "stats",
            "StreamContainerStatsResponse",
            "container_stats",
        )

    def StreamPodSandboxStats(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        return self._stream(
            "ListPodSandboxStats",
            self._filtered("ListPodSandboxStatsRequest", req),
            "stats",
            "StreamPodSandboxStatsResponse",
            "pod_sandbox_stats",
        )

    def StreamPodSandboxMetrics(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        return self._stream(
            "ListPodSandboxMetrics",
            api().ListPodSandboxMetricsRequest(),
            "pod_metrics",
            "StreamPodSandboxMetricsResponse",
            "pod_sandbox_metrics",
        )

    def StreamImages(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        return self._stream(
            "ListImages",
            self._filtered("ListImagesRequest", req),
            "images",
            "StreamImagesResponse",
            "images",
        )

    async def CheckpointContainer(self, req: Any) -> Any:  # noqa: N802
        raise NotImplemented_(f"CheckpointContainer: {NO_CHECKPOINT}")

    async def CheckpointPod(self, req: Any) -> Any:  # noqa: N802
        raise NotImplemented_(f"CheckpointPod: {NO_CHECKPOINT}")

    async def RestorePod(self, req: Any) -> Any:  # noqa: N802
        raise NotImplemented_(f"RestorePod: {NO_CHECKPOINT}")

    async def UpdatePodSandboxResources(self, req: Any) -> Any:  # noqa: N802
        """Best effort, as the RPC is: the kubelet has resized the pod's cgroup itself and
        berth keeps no pod-level resources of its own; the sandbox must exist."""
        self.pods.resolve(req.pod_sandbox_id)
        return api().UpdatePodSandboxResourcesResponse()


__all__ = ["NO_CHECKPOINT", "STREAM_CHUNK", "Extras"]
