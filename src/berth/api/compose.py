"""berth's own routes (not Docker's) for compose projects' service templates, which `berth
compose up` leaves with berthd so that the dashboard can make a service's containers without
the compose file (`containers.templates` says why):

  PUT    /berth/compose/{project}/services/{service}   {"Name", "Replicas", "NeedsCompose",
                                                         "Create": a /containers/create body}
  GET    /berth/compose/{project}                      the record's services (names, replicas)
  DELETE /berth/compose/{project}                      at `down`

The create body is read as `POST /containers/create`'s is (`containers_wire.create_request`),
so the record holds only what a client could have asked for by itself. Imports the containers
service and `errors`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.containers.templates import ServiceTemplate, TemplateStore, check_project
from berth.errors import InvalidArgument, NotFound

from .containers_wire import create_request
from .wire import json_object, json_response, json_text, read_json


class ComposeHandlers:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    @property
    def templates(self) -> TemplateStore:
        return self.containers.templates

    async def put_service(self, request: web.Request) -> web.StreamResponse:
        project = check_project(request.match_info["project"])
        body = await read_json(request)
        replicas = body.get("Replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise InvalidArgument("invalid Replicas: a number is expected")
        tmpl = ServiceTemplate(
            service=request.match_info["service"],
            name=json_text(body.get("Name"), "Name"),
            replicas=replicas,
            needs_compose=json_text(body.get("NeedsCompose"), "NeedsCompose"),
            request=create_request(json_object(body.get("Create"), "Create")),
        )
        await asyncio.to_thread(self.templates.put, project, tmpl)
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.StreamResponse:
        project = check_project(request.match_info["project"])
        tmpl = self.templates.get(project)
        if tmpl is None:
            raise NotFound(f"no record of compose project {project}")
        services: dict[str, Any] = {
            s.service: {"Name": s.name, "Replicas": s.replicas, "NeedsCompose": s.needs_compose}
            for s in tmpl.services.values()
        }
        return json_response({"Name": project, "Services": services})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        project = check_project(request.match_info["project"])
        if not await asyncio.to_thread(self.templates.remove, project):
            raise NotFound(f"no record of compose project {project}")
        return web.Response(status=204)


__all__ = ["ComposeHandlers"]
