"""The platform's services. `service_classes` and `topology` are the one list
of them (the HTTP gateway is listed too; it subscribes to nothing): the
runner starts classes from it, and every process declares as much of the
topology it derives as its broker user may (all of it on a laptop; in
production the `declare-topology` step does, as the admin)."""

from __future__ import annotations

import importlib

from shared.config import GATEWAY, SERVICES

_CLASSES = {
    "intake": "services.intake.service:IntakeService",
    "dispatch": "services.dispatch.service:DispatchService",
    "escalation": "services.escalation.service:EscalationService",
    "assessment": "services.assessment.service:AssessmentService",
    "gateway": "services.gateway.service:GatewayService",  # HTTP only: no database, no events
}


def service_classes(names=SERVICES) -> list[type]:
    classes = []
    for name in names:
        module, attribute = _CLASSES[name].split(":")
        classes.append(getattr(importlib.import_module(module), attribute))
    return classes


def topology():
    """Every subscription of every service, read off their handlers."""
    from shared.messaging import subscriptions_of

    return subscriptions_of(service_classes())


def laptop_classes() -> list[type]:
    """What `python -m services` runs in one process: every service and the gateway."""
    return service_classes([*SERVICES, GATEWAY])
