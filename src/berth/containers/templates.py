"""Compose projects' service templates: how to make one more container of a service, kept by
berthd for the dashboard, which has no compose file.

`berth compose up` hands berthd, for each service it brought up, the create request it used
for the service's container number 1 (Config, HostConfig, every network with its aliases:
all of it typed, as `POST /containers/create` reads it), that container's name, the number
of replicas, and why only compose itself can make the service's containers if it must (a
post_start hook, a pre_start step, files it copies in). `down` removes the project's record.
The dashboard reads the record to scale a service up from none and to bring up a service that
has no container: it makes container N from number 1's request, as `ui.scaling` makes it from
a live container.

Why a record of the daemon's and not the files the containers' labels name: those labels
(`com.docker.compose.project.config_files`, `.working_dir`) come from any API client and
would have berthd, as root, read any host file; the files also need the environment and
`.env` of the shell that ran compose, which berthd does not have, and compose's loader, which
the daemon does not carry. A template is exactly what compose asked for, and no more than an
API client could ask for by itself.

Each project is a JSON file of its own under DATA_ROOT/compose/, written atomically, its name
checked as a compose project name; the store's size is bounded. Imports `containers.create`,
its typed parts, `fs` and `errors`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from berth.containers.create import CreateRequest
from berth.containers.hostconfig import HostConfig
from berth.containers.record import NetworkRequest
from berth.containers.settings import ContainerConfig
from berth.errors import InvalidArgument, NotFound
from berth.fs import atomic_write

PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # compose's project names
SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}")
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
MAX_SERVICES = 256  # of one project
MAX_PROJECTS = 1024
MAX_FILE = 8 << 20  # one project's record, read back
MAX_REPLICAS = 100


def check_project(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid project name {name!r}: lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceTemplate:
    """How compose made the service's container number 1."""

    service: str
    name: str  # number 1's container name (PROJECT-SERVICE-1, or a fixed container_name)
    request: CreateRequest
    replicas: int = 1
    needs_compose: str = ""  # why only compose can make its containers ("": nothing)

    def __post_init__(self) -> None:
        if not SERVICE_NAME.fullmatch(self.service):
            raise InvalidArgument(f"invalid service name {self.service!r}")
        if not CONTAINER_NAME.fullmatch(self.name):
            raise InvalidArgument(f"invalid container name {self.name!r}")
        if not 0 <= self.replicas <= MAX_REPLICAS:
            raise InvalidArgument(f"replicas must be between 0 and {MAX_REPLICAS}")
        if not self.request.config.image:
            raise InvalidArgument("the template's create request names no image")
        if len(self.needs_compose) > 1024:
            raise InvalidArgument("needs_compose: longer than 1024 characters")

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "service": self.service,
            "name": self.name,
            "replicas": self.replicas,
            "needs_compose": self.needs_compose,
            "config": r.config.to_json(),
            "host_config": r.host_config.to_json(),
            "endpoints": {k: v.to_json() for k, v in r.endpoints.items()},
        }

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> ServiceTemplate:
        return cls(
            service=str(j["service"]),
            name=str(j["name"]),
            replicas=int(j.get("replicas", 1)),
            needs_compose=str(j.get("needs_compose", "")),
            request=CreateRequest(
                config=ContainerConfig.from_json(j["config"]),
                host_config=HostConfig.from_json(j["host_config"]),
                endpoints={
                    str(k): NetworkRequest.from_json(v)
                    for k, v in (j.get("endpoints") or {}).items()
                },
            ),
        )


@dataclass(frozen=True, slots=True)
class ProjectTemplate:
    project: str
    services: dict[str, ServiceTemplate] = field(default_factory=dict)


class TemplateStore:
    """The projects' records, in memory and one file each under `root`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._projects: dict[str, ProjectTemplate] | None = None

    def _path(self, project: str) -> str:
        return os.path.join(self.root, check_project(project) + ".json")

    def _load(self) -> dict[str, ProjectTemplate]:
        """The records on disk, read once: files of berthd's own, read bounded, not through
        a symlink; one that does not read is skipped (and rewritten at the next `up`)."""
        if self._projects is not None:
            return self._projects
        out: dict[str, ProjectTemplate] = {}
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            names = []
        for fname in names:
            project = fname.removesuffix(".json")
            if not fname.endswith(".json") or not PROJECT_NAME.fullmatch(project):
                continue
            try:
                fd = os.open(os.path.join(self.root, fname), os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as f:
                    data = f.read(MAX_FILE + 1)
                if len(data) > MAX_FILE:
                    continue
                doc = json.loads(data)
                services = {
                    s.service: s for s in (ServiceTemplate.from_json(x) for x in doc["services"])
                }
            except (OSError, ValueError, KeyError, TypeError, InvalidArgument):
                continue
            out[project] = ProjectTemplate(project, services)
        self._projects = out
        return out

    def _save(self, tmpl: ProjectTemplate) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        doc = {"services": [s.to_json() for s in tmpl.services.values()]}
        atomic_write(self._path(tmpl.project), json.dumps(doc).encode())

    def put(self, project: str, service: ServiceTemplate) -> None:
        """The service's template in the project's record (its earlier one replaced)."""
        check_project(project)
        with self._lock:
            projects = self._load()
            old = projects.get(project)
            if old is None and len(projects) >= MAX_PROJECTS:
                raise InvalidArgument(f"more than {MAX_PROJECTS} compose projects are recorded")
            services = dict(old.services) if old else {}
            if service.service not in services and len(services) >= MAX_SERVICES:
                raise InvalidArgument(f"a project has at most {MAX_SERVICES} services")
            services[service.service] = service
            tmpl = ProjectTemplate(project, services)
            self._save(tmpl)
            projects[project] = tmpl

    def get(self, project: str) -> ProjectTemplate | None:
        with self._lock:
            return self._load().get(project)

    def service(self, project: str, service: str) -> ServiceTemplate:
        tmpl = self.get(project)
        found = tmpl.services.get(service) if tmpl else None
        if found is None:
            raise NotFound(f"no record of service {service} of project {project}")
        return found

    def all(self) -> dict[str, ProjectTemplate]:
        with self._lock:
            return dict(self._load())

    def remove(self, project: str) -> bool:
        """The project's record gone; whether there was one."""
        path = self._path(project)
        with self._lock:
            had = self._load().pop(project, None) is not None
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return had


__all__ = ["ServiceTemplate", "ProjectTemplate", "TemplateStore", "check_project"]
