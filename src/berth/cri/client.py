"""A small synchronous CRI client over the proto's descriptors (no generated stub): what the
tests and bench/cri.py drive berthd's (and containerd's) CRI with, as a kubelet would.

    c = CriClient("unix:///run/berth/cri.sock")
    sid = c.runtime("RunPodSandbox", config={...}).pod_sandbox_id
"""

from __future__ import annotations

from typing import Any

import grpc

from berth.cri.gen import api


class CriClient:
    def __init__(self, address: str, timeout: float = 60.0) -> None:
        # kubelets' message size limit (grpc's default is 4 MiB)
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 16 << 20),
                ("grpc.max_send_message_length", 16 << 20),
            ],
        )
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        service: str,
        method: str,
        request: Any = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """`service`.`method` with `request`, or one made from `fields` (nested messages as
        dicts, as the message constructors take them)."""
        desc = api().DESCRIPTOR.services_by_name[service].methods_by_name[method]
        req_cls = getattr(api(), desc.input_type.name)
        resp_cls = getattr(api(), desc.output_type.name)
        if request is None:
            request = req_cls(**fields)
        stub = self.channel.unary_unary(
            f"/{desc.containing_service.full_name}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        return stub(request, timeout=timeout or self.timeout)

    def stream(self, service: str, method: str, **fields: Any) -> Any:
        """A server-streaming RPC: an iterator of its answers (`.cancel()` ends it)."""
        desc = api().DESCRIPTOR.services_by_name[service].methods_by_name[method]
        resp_cls = getattr(api(), desc.output_type.name)
        stub = self.channel.unary_stream(
            f"/{desc.containing_service.full_name}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )
        return stub(getattr(api(), desc.input_type.name)(**fields))

    def runtime(self, method: str, request: Any = None, **fields: Any) -> Any:
        return self.call("RuntimeService", method, request, **fields)

    def image(self, method: str, request: Any = None, **fields: Any) -> Any:
        return self.call("ImageService", method, request, **fields)


__all__ = ["CriClient"]
