"""How CRI objects live among the engine's containers: names, labels, the CRI metadata.

A pod sandbox is an engine container named k8s_POD_<pod>_<namespace>_<uid>_<attempt>
(cri-dockerd's scheme), a container k8s_<name>_<pod>_<namespace>_<uid>_<attempt>; both
carry the KIND label, and the CRI's own view of them (metadata, labels, annotations,
log path, the image as asked) as one JSON label, so that user labels can never be
confused with ours and the view is rebuilt from the record after a restart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..engine.containers.records import Container
from ..errors import InvalidParameter

KIND = "io.dockerd-py.cri.kind"            # "sandbox" | "container"
SANDBOX_ID = "io.dockerd-py.cri.sandbox-id"
META = "io.dockerd-py.cri.meta"
# The labels cri-dockerd and containerd put, for people reading `docker ps`.
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"

SANDBOX = "sandbox"
CONTAINER = "container"

_NAME_PART = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9.-]*")  # names, namespaces and UIDs


@dataclass
class Meta:
    """The CRI's view of an engine container, stored in its META label."""

    kind: str
    name: str = ""                  # container name, or the pod name
    namespace: str = ""
    uid: str = ""
    attempt: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    sandbox_id: str = ""
    log_path: str = ""              # container: the full CRI log path
    log_directory: str = ""         # sandbox: where its containers' logs go
    image: str = ""                 # the image as the client named it
    runtime_handler: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # status-only details

    def dump(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))


def _check(value: str, what: str, grammar: re.Pattern[str]) -> str:
    if not grammar.fullmatch(value) or len(value) > 253:
        raise InvalidParameter(f"invalid {what} {value!r}")
    return value


def sandbox_name(name: str, namespace: str, uid: str, attempt: int) -> str:
    return "_".join(["k8s", "POD", _check(name, "pod name", _NAME_PART),
                     _check(namespace, "pod namespace", _NAME_PART),
                     _check(uid, "pod uid", _NAME_PART), str(attempt)])


def container_name(name: str, pod: Meta, attempt: int) -> str:
    return "_".join(["k8s", _check(name, "container name", _NAME_PART), pod.name,
                     pod.namespace, pod.uid, str(attempt)])


def labels_for(m: Meta) -> dict[str, str]:
    out = {KIND: m.kind, META: m.dump(), POD_NAME: m.name if m.kind == SANDBOX else "",
           POD_NAMESPACE: m.namespace, POD_UID: m.uid}
    if m.kind == CONTAINER:
        out[SANDBOX_ID] = m.sandbox_id
        out[CONTAINER_NAME] = m.name
        out.pop(POD_NAME)
    return out


def meta_of(c: Container) -> Meta | None:
    """The CRI view of c; None for the Docker API's own containers."""
    labels = c.config.get("Labels") or {}
    kind = labels.get(KIND)
    raw = labels.get(META)
    if kind not in (SANDBOX, CONTAINER) or not raw:
        return None
    try:
        data = json.loads(raw)
        m = Meta(**data)
    except (ValueError, TypeError):
        return None
    return m if m.kind == kind else None
