"""A BuildKit request → the builder's options, checked before anything runs."""

from __future__ import annotations

import re

from dockerd_py.distribution.manifests import host_platform, parse_platform
from dockerd_py.engine.reference import InvalidReference, parse_normalized, with_default_tag
from dockerd_py.errors import InvalidParameter

from .options import BuildOptions
from .request import NETWORK_HOST, NETWORK_MODES, BuildRequest
from .run import RunOptions

_CONTEXT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.:/@-]*")
_EXTRA_HOST = re.compile(r"[^\s:]+:[0-9a-fA-F.:]+|[^\s:]+=[0-9a-fA-F.:]+|[^\s:]+:host-gateway")


def check_platform(text: str) -> str:
    """Only the host's platform is built; others are refused with what would be needed."""
    if not text:
        return ""
    host = host_platform()
    for one in text.split(","):
        asked = parse_platform(one.strip())
        if (asked.os, asked.architecture) != (host.os, host.architecture) or \
                (asked.variant and asked.variant != host.variant):
            raise InvalidParameter(
                f"platform {asked} is not supported: this daemon builds only for its own "
                f"platform ({host}); building for another needs an emulator it does not have")
    return str(host)


_FRONTEND = re.compile(r"(?:docker\.io/)?docker/dockerfile(?:-upstream)?"
                       r"(?::(?:[0-9]+(?:\.[0-9]+){0,2}(?:-labs)?|labs|latest))?"
                       r"(?:@sha256:[0-9a-f]{64})?")


def check_syntax(directive: str) -> None:
    """`# syntax=` naming the stock Dockerfile frontend is served by the built-in one; any
    other frontend image is refused (the daemon runs no frontend images)."""
    ref = directive.strip().split(None, 1)[0] if directive.strip() else ""
    if ref and not _FRONTEND.fullmatch(ref):
        raise InvalidParameter(
            f"unsupported frontend {ref!r} (# syntax=): this daemon builds with its built-in "
            "Dockerfile frontend only (docker/dockerfile:1); remove the line or name "
            "docker/dockerfile:1")


def platform_args() -> dict[str, str | None]:
    """BuildKit's automatic platform ARGs: building on the host for the host."""
    host = host_platform()
    values: dict[str, str | None] = {}
    for prefix in ("BUILD", "TARGET"):
        values[f"{prefix}PLATFORM"] = str(host)
        values[f"{prefix}OS"] = host.os
        values[f"{prefix}ARCH"] = host.architecture
        values[f"{prefix}VARIANT"] = host.variant
    return values


def options_of(request: BuildRequest) -> BuildOptions:
    if request.network not in NETWORK_MODES:
        raise InvalidParameter(f"network mode {request.network!r} not supported by "
                               "buildkit: use default, none or host")
    if request.network == "host" and NETWORK_HOST not in request.entitlements:
        raise InvalidParameter("entitlement network.host is not allowed")
    tags = []
    for tag in request.tags:
        try:
            tags.append(with_default_tag(parse_normalized(tag)).string())
        except InvalidReference as e:
            raise InvalidParameter(f"invalid reference format: {tag}: {e}") from None
    for name, ctx in request.contexts.items():
        if not _CONTEXT_NAME.fullmatch(name) or ".." in name:
            raise InvalidParameter(f"invalid build context name {name!r}")
        if bool(ctx.directory) == bool(ctx.image):
            raise InvalidParameter(f"build context {name!r}: give a directory or an image")
        if ctx.image:
            try:
                parse_normalized(ctx.image)
            except InvalidReference as e:
                raise InvalidParameter(f"build context {name!r}: {e}") from None
    for host in request.extra_hosts:
        if not _EXTRA_HOST.fullmatch(host):
            raise InvalidParameter(f"invalid host {host!r}: expected name:ip")
    network = {"default": "bridge", "none": "none", "host": "host"}[request.network]
    return BuildOptions(
        dockerfile=request.dockerfile_name or "Dockerfile",
        tags=tuple(dict.fromkeys(tags)),
        build_args={str(k): str(v) for k, v in request.build_args.items()},
        target=request.target,
        no_cache=request.no_cache,
        pull=request.pull,
        labels={str(k): str(v) for k, v in request.labels.items()},
        platform=check_platform(request.platform),
        run=RunOptions(network=network, extra_hosts=[h.replace("=", ":", 1)
                                                     for h in request.extra_hosts]),
        contexts=dict(request.contexts),
        secrets=request.secrets,
        ssh=request.ssh,
        auth_source=request.auth,
        entitlements=request.entitlements,
        cache_sources=tuple(request.cache_sources),
        buildkit=True,
    )
