"""What `up` leaves with berthd about each service it brought up: the create request of its
container number 1, for berthd's dashboard, which has no compose file, to make the service's
containers by itself (scale from none, a service with no container). berthd keeps it until
`down` (`berth.containers.templates` says why a record and not the file).

Only what the Engine API's create takes goes there: what compose does beside the create (a
post_start hook, a pre_start step, secrets and configs written into the container) is named
instead, and the dashboard leaves such a service to `berth compose up`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from berth.compose import labels as L
from berth.compose.model import Project, Service
from berth.compose.spec import container_body, endpoint


def needs_compose(project: Project, svc: Service) -> str:
    """Why only compose can make the service's containers ("" when the create is all)."""
    why = []
    if svc.post_start:
        why.append("post_start hooks")
    if svc.pre_start:
        why.append("pre_start steps")
    for refs, objs in ((svc.secrets, project.secrets), (svc.configs, project.configs)):
        for r in refs:
            obj = objs.get(r.source)
            if obj is not None and not obj.file and (obj.content is not None or obj.environment):
                why.append("secrets or configs written into its containers")
                break
    return ", ".join(dict.fromkeys(why))


def service_template(
    project: Project,
    svc: Service,
    image_id: str,
    replicas: int,
    container_of: Callable[[str], str],
) -> dict[str, Any]:
    """The body of berthd's `PUT /berth/compose/{project}/services/{service}`."""
    name = L.container_name(project, svc, 1)
    body = container_body(project, svc, 1, image_id, name, container_of=container_of)
    if not svc.network_mode and len(svc.networks) > 1:
        # compose connects the others after the create; berthd's create takes them all
        eps = body.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
        for sn in svc.networks[1:]:
            eps[project.networks[sn.name].name] = endpoint(svc, sn.name, name)
    return {
        "Name": name,
        "Replicas": replicas,
        "NeedsCompose": needs_compose(project, svc),
        "Create": body,
    }


__all__ = ["service_template", "needs_compose"]
