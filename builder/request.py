"""A BuildKit build, as a front end asks the builder for it (`BuildService.solve`).

The front end (the gRPC control service) has already brought the context to a
directory it owns (file sync of the session, `.dockerignore` applied by the
client) and read the Dockerfile; secrets and the ssh agent stay on the client
and are fetched through the sources when a step needs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockerd_py.engine.types import ImageRecord, Layer

from .observer import BuildObserver

NETWORK_MODES = ("default", "none", "host")
# BuildKit's entitlements: what a build may do only when the client allows it
NETWORK_HOST, SECURITY_INSECURE = "network.host", "security.insecure"


class SecretSource(Protocol):
    async def get(self, secret_id: str) -> bytes:
        """The secret's value; raises dockerd_py.errors.NotFound when the client has none
        of that id."""


class SshSource(Protocol):
    async def forward(self, ssh_id: str) -> str:
        """The path of a unix socket, valid until the build ends, that forwards to the
        client's agent `ssh_id` ("default" unless the Dockerfile names one); raises
        NotFound when the client forwards none of that id."""


class AuthSource(Protocol):
    async def credentials(self, host: str) -> dict[str, Any] | None:
        """Registry credentials for host ("docker.io" for Docker Hub) in the shape of
        X-Registry-Auth ({"username", "password"} or {"identitytoken"}), or None."""


@dataclass(frozen=True)
class ImportedStep:
    """A step an imported cache (--cache-from) has: its image is rebuilt from these."""

    created: str                                   # the history entry's (and image's) time
    layer: Layer | None                            # the layer it added, unpacked; None: none


class CacheSource(Protocol):
    async def lookup(self, key: str, parent: ImageRecord | None) -> ImportedStep | None:
        """The step with cache key `key` on `parent`, if this source has it; its layer
        is fetched and unpacked now (under the build's lease), never before a hit.
        A source that cannot deliver answers None (a cache miss), never an error."""


@dataclass(frozen=True)
class NamedContext:
    """`--build-context name=...`: exactly one of directory and image."""

    directory: str = ""   # a local directory the caller owns (read only)
    image: str = ""       # "docker-image://REF" given as REF


@dataclass(frozen=True)
class BuildRequest:
    dockerfile: bytes                              # the Dockerfile's text
    observer: BuildObserver
    dockerfile_name: str = "Dockerfile"            # for messages ("load build definition")
    tags: Sequence[str] = ()                       # references to tag the result with
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    network: str = "default"                       # one of NETWORK_MODES
    extra_hosts: Sequence[str] = ()                # "name:ip" (as --add-host)
    platform: str = ""                             # "" or the host's ("linux/amd64")
    contexts: Mapping[str, NamedContext] = field(default_factory=dict)
    secrets: SecretSource | None = None
    ssh: SshSource | None = None
    auth: AuthSource | None = None
    entitlements: frozenset[str] = frozenset()     # NETWORK_HOST, SECURITY_INSECURE
    cache_sources: Sequence[CacheSource] = ()      # --cache-from, asked after our own cache


@dataclass(frozen=True)
class BuildResult:
    image_id: str                                  # "sha256:..."
    config: dict[str, Any]                         # the image's config document
