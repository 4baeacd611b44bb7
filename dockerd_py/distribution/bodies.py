"""Reading what a registry answers, never more than a cap.

Everything but a blob is read into memory (manifests, tag lists, token and
error answers), so each read stops at a limit: a registry or token server that
streams an endless body gets an error, not the daemon's memory. Blobs are
streamed to disk and capped by the size their descriptor announced (blobs.py).
The limits follow containers/image's iolimits and distribution's own
4 MiB manifest limit.
"""

from __future__ import annotations

import aiohttp

from .errors import RegistryError, transport_error

MAX_MANIFEST = 4 << 20      # the distribution spec's limit for manifests
MAX_TAG_PAGE = 4 << 20      # one page of a tag list
MAX_TOKEN = 1 << 20         # a token server's answer
MAX_ERROR = 64 << 10        # an error answer: only its start is worth showing


class TooLarge(RegistryError):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what}: the response exceeds the limit of {limit} bytes", 500)


async def read_capped(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, or TooLarge as soon as it passes `limit` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        raise TooLarge(what, limit)
    body = bytearray()
    try:
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise TooLarge(what, limit)
    except (TimeoutError, aiohttp.ClientError) as e:
        raise transport_error(resp.method, str(resp.url), e) from None
    return bytes(body)


async def read_head(resp: aiohttp.ClientResponse, limit: int = MAX_ERROR) -> bytes:
    """The first `limit` bytes of a body whose rest does not matter (an error's text);
    a broken or slow body reads as what arrived."""
    body = bytearray()
    try:
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) >= limit:
                break
    except (TimeoutError, aiohttp.ClientError):
        pass
    return bytes(body[:limit])
