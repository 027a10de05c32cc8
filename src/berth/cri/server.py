"""The gRPC server of the CRI: runtime.v1's RuntimeService and ImageService, served with
grpc.aio on the daemon's own asyncio loop (the handlers await the same services the Engine API
does, with no hop between threads).

The method table is made from the proto's descriptors: each RPC whose name a handler object has
as an async method is served, the others answer UNIMPLEMENTED (grpc's own answer to an unknown
method). berth's errors become gRPC status codes here, at the edge.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from berth.cri.gen import api
from berth.errors import (
    BerthError,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    NotImplemented_,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[BerthError], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (NotImplemented_, grpc.StatusCode.UNIMPLEMENTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_code(e: BerthError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(e, cls):
            return code
    return grpc.StatusCode.UNKNOWN


Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def _wrap(name: str, fn: Callable[[Any], Awaitable[Any]]) -> Handler:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await fn(request)
        except BerthError as e:
            log.debug("CRI %s: %s", name, e)
            await context.abort(status_code(e), str(e))
        except OSError as e:
            log.warning("CRI %s: %s", name, e)
            await context.abort(grpc.StatusCode.UNKNOWN, str(e))

    return call


def _wrap_stream(name: str, fn: Callable[[Any], AsyncIterator[Any]]) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in fn(request):
                yield item
        except BerthError as e:
            log.debug("CRI %s: %s", name, e)
            await context.abort(status_code(e), str(e))

    return call


def service_handler(service: str, *impls: object) -> grpc.GenericRpcHandler:
    """The methods named as `service`'s RPCs, of the first of `impls` that has one: async
    ones for unary RPCs, async generators for server-streaming ones."""
    desc = api().DESCRIPTOR.services_by_name[service]
    methods: dict[str, grpc.RpcMethodHandler] = {}
    for m in desc.methods:
        fn = next((f for f in (getattr(i, m.name, None) for i in impls) if f is not None), None)
        if fn is None or m.client_streaming:
            continue
        req = getattr(api(), m.input_type.name)
        if m.server_streaming:
            methods[m.name] = grpc.unary_stream_rpc_method_handler(
                _wrap_stream(m.name, fn),
                request_deserializer=req.FromString,
                response_serializer=lambda msg: msg.SerializeToString(),
            )
            continue
        methods[m.name] = grpc.unary_unary_rpc_method_handler(
            _wrap(m.name, fn),
            request_deserializer=req.FromString,
            response_serializer=lambda msg: msg.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(desc.full_name, methods)


class CriServer:
    """Serves `runtime` and `images` (the RuntimeService's and the ImageService's handler
    objects) on a unix socket."""

    def __init__(self, runtime: tuple[object, ...], images: tuple[object, ...]) -> None:
        self.runtime = runtime
        self.images = images
        self.server: grpc.aio.Server | None = None
        self.path = ""

    async def start(self, address: str) -> None:
        if not address.startswith("unix://"):
            raise InvalidArgument(f"--cri-socket {address!r}: only unix:///PATH is served")
        self.path = address[len("unix://") :]
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 16 << 20),
                ("grpc.max_send_message_length", 16 << 20),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                service_handler("RuntimeService", *self.runtime),
                service_handler("ImageService", *self.images),
            )
        )
        if not server.add_insecure_port(address):
            raise InvalidArgument(f"cannot listen on {address}")
        await server.start()
        os.chmod(self.path, 0o660)
        self.server = server
        log.info("CRI listen on %s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(1.0)
            self.server = None
        for impl in self.runtime:
            close = getattr(impl, "close", None)
            if close is not None:
                await close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


__all__ = ["CriServer", "service_handler", "status_code"]
