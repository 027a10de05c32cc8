"""The networks and volumes a project's services use, made before its containers: external
ones must exist, ours are created once, a same-named one of someone else's is warned about.

Imports the compose modules below it.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.compose import labels as L
from berth.compose.base import ComposeError, Progress
from berth.compose.engine import Engine
from berth.compose.model import Project
from berth.compose.spec import network_body, volume_body


def ensure_networks(
    project: Project,
    engine: Engine,
    progress: Progress,
    warn: Callable[[str], None],
    services: list[str],
) -> None:
    used = {n.name for s in services for n in project.services[s].networks}
    for key in sorted(used):
        net = project.networks[key]
        found = engine.network(net.name)
        if net.external:
            if found is None:
                raise ComposeError(
                    f"network {net.name} declared as external, but could not be found"
                )
            continue
        if found is not None:
            if found.labels.get(L.PROJECT, project.name) != project.name:
                warn(
                    f"a network with name {net.name} exists but was not created for "
                    f'project "{project.name}".'
                )
            continue
        progress("Network", net.name, "Creating")
        engine.create_network(network_body(project, net))
        progress("Network", net.name, "Created")


def ensure_volumes(
    project: Project,
    engine: Engine,
    progress: Progress,
    warn: Callable[[str], None],
    services: list[str],
) -> None:
    used = {
        m.source
        for s in services
        for m in project.services[s].mounts
        if m.type.value == "volume" and m.source
    }
    for key in sorted(used):
        vol = project.volumes[key]
        found = engine.volume(vol.name)
        if vol.external:
            if found is None:
                raise ComposeError(f'external volume "{vol.name}" not found')
            continue
        if found is not None:
            if found.labels.get(L.PROJECT, project.name) != project.name:
                warn(
                    f'volume "{vol.name}" already exists but was not created by '
                    "Docker Compose. Use `external: true` to use an existing volume"
                )
            continue
        progress("Volume", vol.name, "Creating")
        engine.create_volume(volume_body(project, vol))
        progress("Volume", vol.name, "Created")
