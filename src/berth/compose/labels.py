"""Docker Compose's labels and object names, and the configuration hash that tells a changed
service from an unchanged one.

Imports nothing of berth's but `compose.model`.
"""

from __future__ import annotations

import hashlib
import json

from berth.compose.model import Project, Service

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
CONFIG_HASH = "com.docker.compose.config-hash"
ONEOFF = "com.docker.compose.oneoff"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
ENVIRONMENT_FILE = "com.docker.compose.project.environment_file"
DEPENDS_ON = "com.docker.compose.depends_on"
IMAGE = "com.docker.compose.image"
VERSION = "com.docker.compose.version"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
REPLACE = "com.docker.compose.replace"

# the Compose version berth's labels claim: docker compose reads projects labelled so
COMPOSE_VERSION = "2.29.0"

# keys that do not change a running container (docker compose leaves them out of its hash too)
_NOT_HASHED = ("build", "pull_policy", "scale", "profiles")


def config_hash(svc: Service) -> str:
    """sha256 of the service's canonical configuration, as a hex string."""
    raw: dict[str, Any] = {k: v for k, v in svc.raw.items() if k not in _NOT_HASHED}
    deploy = raw.get("deploy")
    if isinstance(deploy, dict):
        raw["deploy"] = {k: v for k, v in deploy.items() if k != "replicas"}
    data = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def container_name(project: Project, svc: Service, number: int) -> str:
    if svc.container_name:
        return svc.container_name
    return f"{project.name}-{svc.name}-{number}"


def oneoff_name(project: Project, svc: Service, suffix: str) -> str:
    return f"{project.name}-{svc.name}-run-{suffix}"


def depends_on_label(svc: Service) -> str:
    """`db:service_healthy:false,cache:service_started:false`, as docker compose writes it."""
    return ",".join(
        f"{d.service}:{d.condition.value}:{str(d.restart).lower()}" for d in svc.depends_on
    )


def project_labels(project: Project) -> dict[str, str]:
    return {PROJECT: project.name, VERSION: COMPOSE_VERSION}


def container_labels(
    project: Project, svc: Service, number: int, image_id: str, oneoff: bool = False
) -> dict[str, str]:
    labels = dict(svc.labels)
    labels.update(
        {
            PROJECT: project.name,
            SERVICE: svc.name,
            NUMBER: str(number),
            CONFIG_HASH: config_hash(svc),
            ONEOFF: "True" if oneoff else "False",
            WORKING_DIR: str(project.working_dir),
            CONFIG_FILES: ",".join(str(f) for f in project.config_files),
            DEPENDS_ON: depends_on_label(svc),
            IMAGE: image_id,
            VERSION: COMPOSE_VERSION,
        }
    )
    return labels
