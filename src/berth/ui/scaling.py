"""A compose project's scale and up, from the dashboard, without its compose file.

berthd has no compose file: what a service is, the dashboard learns from the containers it
already has. Scaling a service up makes more of its containers as docker compose does: the
Config and HostConfig of one of the service's containers, named PROJECT-SERVICE-N with the
next free N, labelled with that `com.docker.compose.container-number`, on the same networks
with the service's aliases, then started. Scaling down stops and removes the highest numbers
(their volumes are kept, as with `down` without `-v`). Up starts what the project has, each
service after those it depends on (label `com.docker.compose.depends_on`), as `docker compose
up -d` does for a project whose file has not changed; it reads no file, so a changed file
needs `berth compose up`.

A service with no container left (scaled to 0, or never made) is made from the record `berth
compose up` leaves with berthd (`containers.templates`): number 1's create request, as
compose sent it.

Imports the containers service (compose itself is a client of the API: DESIGN.md).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import time

from berth.containers import ContainerService
from berth.containers.create import CreateRequest
from berth.containers.record import ContainerRecord, HealthStatus, NetworkRequest
from berth.containers.templates import ServiceTemplate
from berth.containers.views import ContainerView
from berth.errors import Conflict, InvalidArgument

from .projects import NUMBER, SERVICE, labels_of, members, number_of, project_members

ONEOFF = "com.docker.compose.oneoff"
DEPENDS_ON = "com.docker.compose.depends_on"
MAX_REPLICAS = 100  # a click (or a typo) does not make a thousand containers
UP_WAIT = 120.0  # seconds a dependency gets to become healthy or to complete
ANONYMOUS = re.compile(r"[0-9a-f]{64}")  # an anonymous volume's name (a named one is PROJECT_X)


def container_name(project: str, service: str, number: int) -> str:
    """Docker Compose's name of a service's container. `berth.compose.labels.container_name`
    has the same rule, but `ui` may not import `compose` (DESIGN.md's table), and that one
    takes compose's model: the rule is one line, so it is written again here."""
    return f"{project}-{service}-{number}"


def service_members(
    containers: ContainerService, project: str, service: str
) -> list[ContainerView]:
    """The service's containers (not `compose run`'s one-off ones), by number; none if the
    project's record (`berth compose up`'s) has the service, else NotFound."""
    found = [
        v
        for v in project_members(containers, project)
        if labels_of(v).get(SERVICE) == service and labels_of(v).get(ONEOFF, "False") != "True"
    ]
    if not found:
        containers.templates.service(project, service)  # NotFound
    return sorted(found, key=number_of)


def template_request(
    tmpl: ServiceTemplate, project: str, service: str, number: int
) -> tuple[CreateRequest, str]:
    """Container `number` of the service from compose's record of its number 1 (what compose
    itself would send: its number, name and aliases changed); with its name."""
    if tmpl.needs_compose:
        raise Conflict(
            f"service {service}: only berth compose up can make its containers "
            f"({tmpl.needs_compose})"
        )
    one = container_name(project, service, 1)
    if tmpl.name != one:  # a fixed container_name
        if number != 1:
            raise Conflict(
                f"service {service} has a fixed container name ({tmpl.name}): "
                "it cannot have more than one container"
            )
        new = tmpl.name
    else:
        new = container_name(project, service, number)
    req = tmpl.request
    config = dataclasses.replace(req.config, labels={**req.config.labels, NUMBER: str(number)})
    endpoints = {
        k: dataclasses.replace(
            ep, aliases=[new if a == tmpl.name else a for a in ep.aliases], links=ep.links
        )
        for k, ep in req.endpoints.items()
    }
    hc = copy.deepcopy(req.host_config)
    return CreateRequest(config=config, host_config=hc, endpoints=endpoints), new


def clone_request(rec: ContainerRecord, project: str, service: str, number: int) -> CreateRequest:
    """What makes another container of `rec`'s service: its own Config and HostConfig, with
    the new number, and its networks with the service's aliases (the old container's name,
    which compose gives as an alias too, swapped for the new one's)."""
    old, new = rec.name.lstrip("/"), container_name(project, service, number)
    cfg = rec.config
    labels = {**cfg.labels, NUMBER: str(number)}
    # the record holds the merged Config: a hostname create made up (the ID's start) is not
    # the service's, and an entrypoint of none must stay none (not the image's again)
    config = dataclasses.replace(
        cfg,
        hostname="" if cfg.hostname == rec.id[:12] else cfg.hostname,
        labels=labels,
        mac_address="",
        entrypoint=cfg.entrypoint if cfg.entrypoint is not None else ("",),
        extra={},
    )
    hc = copy.deepcopy(rec.host_config)
    hc.container_id_file = ""
    if hc.mounts:
        # a recreated container keeps its anonymous volumes by name (compose passes them back):
        # a new replica gets volumes of its own, as compose gives it
        hc.mounts = tuple(
            {k: v for k, v in m.items() if k != "Source"}
            if m.get("Type") == "volume" and ANONYMOUS.fullmatch(str(m.get("Source") or ""))
            else m
            for m in hc.mounts
        )
    endpoints = {
        n.net: NetworkRequest(
            net=n.net,
            aliases=[new if a == old else a for a in n.aliases if a != rec.id[:12]],
            links=list(n.links) if n.links is not None else None,
            link_local=list(n.link_local),
            driver_opts=dict(n.driver_opts),
            # a fixed address or MAC is one container's: the new one gets its own
        )
        for n in rec.nets
    }
    return CreateRequest(config=config, host_config=hc, endpoints=endpoints)


async def scale(
    containers: ContainerService, project: str, service: str, replicas: int
) -> dict[str, list[str]]:
    """The service at `replicas` containers; the names created and removed."""
    if not 0 <= replicas <= MAX_REPLICAS:
        raise InvalidArgument(f"replicas must be between 0 and {MAX_REPLICAS}")
    views = service_members(containers, project, service)
    created: list[str] = []
    removed: list[str] = []
    if not views:  # none left to copy: from `berth compose up`'s record
        tmpl = containers.templates.service(project, service)
        for n in range(1, replicas + 1):
            req, name = template_request(tmpl, project, service, n)
            cid, _warnings = await containers.create(req, name)
            created.append(name)
            await containers.start(cid)
        return {"created": created, "removed": removed}
    if len(views) > replicas:
        for v in sorted(views, key=number_of, reverse=True)[: len(views) - replicas]:
            if v.record.state.running:
                await containers.stop(v.record.id)  # as compose: a clean stop, then removal
            await containers.remove(v.record.id, force=True)
            removed.append(v.record.name.lstrip("/"))
        return {"created": created, "removed": removed}
    model = next((v for v in views if v.record.state.running), views[0]).record
    if model.name.lstrip("/") != container_name(project, service, number_of_record(model)):
        raise Conflict(
            f"service {service} has a fixed container name ({model.name.lstrip('/')}): "
            "it cannot have more than one container"
        )
    taken = {number_of(v) for v in views}
    n = 1
    for _ in range(replicas - len(views)):
        while n in taken:
            n += 1
        taken.add(n)
        cid, _warnings = await containers.create(
            clone_request(model, project, service, n), container_name(project, service, n)
        )
        created.append(container_name(project, service, n))
        await containers.start(cid)
    return {"created": created, "removed": removed}


def number_of_record(rec: ContainerRecord) -> int:
    try:
        return int(rec.config.labels.get(NUMBER, "0"))
    except ValueError:
        return 0


def dependencies(views: list[ContainerView]) -> dict[str, dict[str, str]]:
    """Each service's dependencies and their conditions, from the label compose leaves
    (`db:service_healthy:false,cache:service_started:false`)."""
    deps: dict[str, dict[str, str]] = {}
    for v in views:
        svc = labels_of(v).get(SERVICE, "")
        mine = deps.setdefault(svc, {})
        for item in labels_of(v).get(DEPENDS_ON, "").split(","):
            dep, _, rest = item.strip().partition(":")
            if dep:
                mine.setdefault(dep, rest.partition(":")[0] or "service_started")
    return deps


def start_order(deps: dict[str, dict[str, str]]) -> list[str]:
    """The services, each after those it depends on (those the project has); a cycle is
    refused, as compose refuses it."""
    order: list[str] = []
    done: set[str] = set()
    pending = sorted(deps)
    while pending:
        ready = [s for s in pending if all(d in done or d not in deps for d in deps[s])]
        if not ready:
            raise InvalidArgument(f"dependency cycle between services: {', '.join(pending)}")
        order += ready
        done.update(ready)
        pending = [s for s in pending if s not in done]
    return order


async def _wait_for(containers: ContainerService, views: list[ContainerView], cond: str) -> None:
    """A dependency's condition met by all its containers: healthy, or exited with 0."""
    if cond not in ("service_healthy", "service_completed_successfully"):
        return
    deadline = time.monotonic() + UP_WAIT
    for v in views:
        name = v.record.name.lstrip("/")
        if cond == "service_completed_successfully":
            try:
                res = await asyncio.wait_for(containers.wait(v.record.id), UP_WAIT)
            except TimeoutError:
                raise Conflict(f"dependency {name} did not complete") from None
            if res.code != 0:
                raise Conflict(f"dependency {name} exited with {res.code}")
            continue
        while True:
            st = containers.inspect(v.record.id).record.state
            status = st.health.status if st.health is not None else None
            if status is HealthStatus.HEALTHY or (st.health is None and st.running):
                break  # no health check: compose would refuse the file; running will do
            if status is HealthStatus.UNHEALTHY or not st.running:
                raise Conflict(f"dependency {name} is unhealthy or not running")
            if time.monotonic() > deadline:
                raise Conflict(f"dependency {name} did not become healthy")
            await asyncio.sleep(0.5)


async def create_missing(containers: ContainerService, project: str) -> list[str]:
    """The containers of the services in `berth compose up`'s record that have none (as
    many as it recorded), created but not started; their names. A service only compose can
    make is refused before anything is made."""
    tmpl = containers.templates.get(project)
    if tmpl is None:
        return []
    have = {
        labels_of(v).get(SERVICE, "")
        for v in project_members(containers, project)
        if labels_of(v).get(ONEOFF) != "True"
    }
    missing = [s for name, s in sorted(tmpl.services.items()) if name not in have]
    for s in missing:
        if s.needs_compose and s.replicas:
            raise Conflict(
                f"service {s.service} has no container, and only berth compose up can make "
                f"its containers ({s.needs_compose})"
            )
    made = []
    for s in missing:
        for n in range(1, s.replicas + 1):
            req, name = template_request(s, project, s.service, n)
            await containers.create(req, name)
            made.append(name)
    return made


async def up(containers: ContainerService, project: str) -> list[str]:
    """The services that have no container made (`create_missing`), then every container of
    the project started, in depends_on order; the names started."""
    await create_missing(containers, project)
    views = [v for v in members(containers, project) if labels_of(v).get(ONEOFF) != "True"]
    by: dict[str, list[ContainerView]] = {}
    for v in views:
        by.setdefault(labels_of(v).get(SERVICE, ""), []).append(v)
    deps = dependencies(views)
    started: list[str] = []
    for svc in start_order(deps):
        for dep, cond in sorted(deps[svc].items()):
            if dep in by:
                await _wait_for(containers, by[dep], cond)
        for v in sorted(by[svc], key=number_of):
            st = containers.inspect(v.record.id).record.state
            if st.running or st.paused:
                continue
            await containers.start(v.record.id)
            started.append(v.record.name.lstrip("/"))
    return started


__all__ = [
    "scale",
    "up",
    "clone_request",
    "template_request",
    "create_missing",
    "container_name",
    "start_order",
    "dependencies",
]
