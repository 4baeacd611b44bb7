"""The Solver Control uses: the Dockerfile frontend on our builder, and the exporters.

Exporters:
  * "moby" (and "image", which buildx turns into "moby" for this driver): the image
    is in our store already; tag it with every `name`. `push=true` is the client's
    to do, as with dockerd's classic store: buildx pushes the tags through the
    Engine API (POST /images/{name}/push) after the build. The response carries
    containerimage.digest / containerimage.config.digest (the image ID, as dockerd's
    classic store answers) and image.name, which --iidfile and --metadata-file use.
  * "local" / "tar": the image's root filesystem, sent back through the session.
  * "docker" / "oci": refused; buildx does not offer them for this driver either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from builder import imageconfig
from builder.service import BuildService
from dockerd_py.engine.images.contract import Images
from dockerd_py.engine.reference import parse_normalized, with_default_tag
from dockerd_py.errors import DaemonError, InvalidParameter, NotImplementedByDaemon
from dockerd_py.protos.buildkit.control import control_pb2 as pb

from . import inlinecache
from .builds import Build, BuildResult
from .contexts import ContextDirs
from .control import host_platform
from .dockerfile import run_dockerfile
from .exporters import export_files
from .frontend import parse_attrs
from .inlinecache import RemoteOpener
from .status import vertex_digest

log = logging.getLogger(__name__)

_IMAGE_EXPORTERS = ("moby", "image")
_FILE_EXPORTERS = ("local", "tar")
# attributes of the image exporter that change nothing for images of our store
_HARMLESS_IMAGE_ATTRS = {"prefer-image-digest", "oci-artifact", "buildinfo-attrs", "unpack",
                         "oci-mediatypes", "dangling-name-prefix", "store"}
_BOOL = {"true": True, "1": True, "false": False, "0": False, "": False}


def _bool(attrs: Mapping[str, str], key: str) -> bool:
    value = attrs.get(key, "").lower()
    if value not in _BOOL:
        raise InvalidParameter(f"invalid value {value[:20]!r} for exporter attribute {key}")
    return _BOOL[value]


def _names(attrs: Mapping[str, str]) -> list[str]:
    out = []
    for name in (n.strip() for n in attrs.get("name", "").split(",")):
        if not name:
            continue
        try:
            ref = parse_normalized(name)
        except (DaemonError, ValueError):
            raise InvalidParameter(f"invalid reference format: {name[:200]!r}") from None
        if ref.digest:
            raise InvalidParameter(f"image name cannot contain a digest: {name[:200]!r}")
        out.append(with_default_tag(ref).string())
    return out


def _given_names(attrs: Mapping[str, str]) -> list[str]:
    """The names as BuildKit's progress shows them: normalized, no default tag added."""
    return [parse_normalized(n.strip()).string() for n in attrs.get("name", "").split(",")
            if n.strip()]


class DockerfileSolver:
    def __init__(self, builder: BuildService, images: Images, contexts_root: str,
                 remote: RemoteOpener) -> None:
        self.builder = builder
        self.remote = remote
        self.images = images
        self.contexts = ContextDirs(contexts_root)

    async def prune(self) -> None:
        """The build cache is pruned: the client directories kept go with it."""
        await self.contexts.clear()

    def check_exporters(self, exporters: list[pb.Exporter]) -> None:
        if len(exporters) > 1:
            raise NotImplementedByDaemon("only one exporter per build is supported")
        for exporter in exporters:
            if exporter.Type in _IMAGE_EXPORTERS:
                for key in exporter.Attrs:
                    if key not in _HARMLESS_IMAGE_ATTRS | {"name", "push"}:
                        raise NotImplementedByDaemon(
                            f"image exporter attribute {key[:80]!r} is not supported")
                _names(exporter.Attrs)
                _bool(exporter.Attrs, "push")
            elif exporter.Type in _FILE_EXPORTERS:
                for key in exporter.Attrs:
                    if key != "dest":   # the client's own (where it writes)
                        raise NotImplementedByDaemon(
                            f"{exporter.Type} exporter attribute {key[:80]!r} is not "
                            "supported")
            else:
                raise NotImplementedByDaemon(
                    f"exporter {exporter.Type[:40]!r} is not supported by this daemon: use "
                    "--load (the default), --push, or --output type=local/tar")

    async def solve(self, attrs: Mapping[str, str], build: Build) -> BuildResult:
        os_name, arch = host_platform()
        request = parse_attrs(attrs, f"{os_name}/{arch}")
        build.inline_cache = build.inline_cache or request.inline_cache
        build.cache_from = tuple(dict.fromkeys([*build.cache_from, *request.cache_imports]))
        return await run_dockerfile(self.builder, self.contexts, request, build, self.remote)

    async def export(self, result: BuildResult, build: Build) -> dict[str, str]:
        if build.inline_cache and any(e.Type in _IMAGE_EXPORTERS
                                      for e in build.request.Exporters):
            result = await self._with_inline_cache(result, build.started)  # (images only)
        response = {"containerimage.digest": result.image_id,
                    "containerimage.config.digest": result.image_id}
        for exporter in build.request.Exporters:
            if exporter.Type in _IMAGE_EXPORTERS:
                response.update(await self._export_image(result, exporter.Attrs, build))
            elif exporter.Type in _FILE_EXPORTERS:
                image = await self.images.get(result.image_id)
                if image is None:
                    raise InvalidParameter(f"image {result.image_id} is gone")
                await export_files(self.builder, image, exporter.Type, build)
        return response

    async def _with_inline_cache(self, result: BuildResult, since: float) -> BuildResult:
        """The image with its steps' cache records in its config (inlinecache.py): a
        sibling of the built image, with the same layers and parent."""
        image = await self.images.get(result.image_id)
        if image is None:
            raise InvalidParameter(f"image {result.image_id} is gone")
        entries = await self.builder.backend.cache.entries()
        images = {i.id: i for i in await self.images.list()}
        records = inlinecache.chain_records(image, entries, images, since)
        if not records:
            return result
        document = dict(image.config)
        document[inlinecache.CACHE_KEY] = inlinecache.encode(records)
        config = imageconfig.encode(document)
        cached, _ = await self.images.record(config, image.layers, parent=image.parent)
        return BuildResult(cached.id, imageconfig.encode(cached.config))

    async def _export_image(self, result: BuildResult, attrs: Mapping[str, str],
                            build: Build) -> dict[str, str]:
        progress = build.progress
        step = vertex_digest(build.ref, "exporting to image")
        await progress.started(step, "exporting to image")
        image = await self.images.get(result.image_id)
        if image is None:
            raise InvalidParameter(f"image {result.image_id} is gone")
        await progress.status(step, "exporting layers", done=True)
        await progress.status(step, f"writing image {image.id}", done=True)
        names = _names(attrs)
        for name, given in zip(names, _given_names(attrs), strict=True):
            await self.images.set_tag(image, name)
            await progress.status(step, f"naming to {given}", done=True)
        await progress.completed(step)
        out: dict[str, str] = {}
        if names:
            out["image.name"] = ",".join(names)
        return out

