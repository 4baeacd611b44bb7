"""runtime.v1.ImageService over the engine's image store (the Docker API's own)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from ..distribution.service import DistributionService
from ..engine.images import delete as delete_mod
from ..engine.images.service import ImageService as Images
from ..engine.reference import parse_normalized, with_default_tag
from ..engine.types import ImageRecord
from ..errors import DaemonError, InvalidParameter, NotFound
from ..protos.cri import api_pb2 as pb
from ..protos.cri import api_pb2_grpc as rpc_pb
from .errors import Context, rpc


def image_message(image: ImageRecord, pinned: frozenset[str] = frozenset()) -> pb.Image:
    user = str((image.config.get("config") or {}).get("User") or "")
    name = user.split(":", 1)[0]
    out = pb.Image(id=image.id, repo_tags=list(image.tags), repo_digests=list(image.digests),
                   size=image.size, spec=pb.ImageSpec(image=image.id),
                   pinned=bool(pinned & set(image.tags)))
    if name.isdigit():
        out.uid.value = int(name)
    elif name:
        out.username = name
    return out


def _auth(a: pb.AuthConfig) -> dict[str, Any] | None:
    if not any((a.username, a.password, a.auth, a.identity_token, a.registry_token)):
        return None
    return {"username": a.username, "password": a.password, "auth": a.auth,
            "serveraddress": a.server_address, "identitytoken": a.identity_token,
            "registrytoken": a.registry_token}


def _normalized(ref: str) -> str:
    try:
        return with_default_tag(parse_normalized(ref)).string()
    except DaemonError:
        return ref


class ImageServicer(rpc_pb.ImageServiceServicer):
    def __init__(self, images: Images, distribution: DistributionService, fs_root: str,
                 sandbox_image: str) -> None:
        # The sandbox image is pinned: kubelet's image GC leaves it alone.
        self.pinned = frozenset({_normalized(sandbox_image)})
        self.images = images
        self.distribution = distribution
        self.fs_root = fs_root

    async def find(self, ref: str) -> ImageRecord | None:
        if not ref:
            raise InvalidParameter("image reference is required")
        try:
            return await self.images.resolve(ref)
        except NotFound:
            return None

    @rpc
    async def ListImages(self, request: pb.ListImagesRequest, context: Context
                         ) -> pb.ListImagesResponse:
        want = request.filter.image.image if request.HasField("filter") else ""
        if want:
            image = await self.find(want)
            found = [image_message(image, self.pinned)] if image else []
            return pb.ListImagesResponse(images=found)
        return pb.ListImagesResponse(images=[image_message(i, self.pinned)
                                              for i in await self.images.list()])

    @rpc
    async def ImageStatus(self, request: pb.ImageStatusRequest,
                          context: Context) -> pb.ImageStatusResponse:
        image = await self.find(request.image.image)
        if image is None:
            return pb.ImageStatusResponse()  # absent is an empty answer, not an error
        info = {}
        if request.verbose:
            info["info"] = json.dumps({"imageSpec": image.config, "chainID": image.top_chain,
                                       "manifestDigest": image.manifest_digest})
        return pb.ImageStatusResponse(image=image_message(image, self.pinned), info=info)

    @rpc
    async def PullImage(self, request: pb.PullImageRequest, context: Context
                        ) -> pb.PullImageResponse:
        ref = request.image.image
        if not ref:
            raise InvalidParameter("image reference is required")
        image = await self.distribution.pull(ref, auth=_auth(request.auth))
        return pb.PullImageResponse(image_ref=image.id)

    @rpc
    async def RemoveImage(self, request: pb.RemoveImageRequest,
                          context: Context) -> pb.RemoveImageResponse:
        image = await self.find(request.image.image)
        if image is not None:  # removing an absent image succeeds (kubelet retries)
            with contextlib.suppress(NotFound):  # a concurrent RemoveImage won
                await delete_mod.delete(self.images, image.id, force=True)
        return pb.RemoveImageResponse()

    @rpc
    async def ImageFsInfo(self, request: pb.ImageFsInfoRequest,
                          context: Context) -> pb.ImageFsInfoResponse:
        images = await self.images.list()
        usage = pb.FilesystemUsage(
            timestamp=time.time_ns(), fs_id=pb.FilesystemIdentifier(mountpoint=self.fs_root),
            used_bytes=pb.UInt64Value(value=sum(i.size for i in images)),
            inodes_used=pb.UInt64Value(value=0))
        return pb.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])
