"""HTTP to one registry endpoint: the /v2/ ping, authenticated requests, and
the handful of distribution-spec calls pull and push make.

Every request to the endpoint first gets an Authorization header from the
`Authorizer` (which knows the challenge from the ping); a 401 that brings a new
challenge, or a token that went stale, is retried once. Requests that stream a
body are only sent after an earlier request of the same scopes settled the
credentials.

Credentials go to the endpoint's own origin (scheme, host and port) and nowhere
else, as distribution's client keys challenges by the endpoint it pinged: a
`Link: next`, an upload `Location` or a blob redirect to another host, another
port or plain HTTP is followed without them (aiohttp drops the header on a
redirect to another origin), and a challenge from such a URL is never adopted.
An endpoint is plain HTTP only for an insecure registry (endpoints.py), so
credentials cross the network in clear only where the user allowed it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
from yarl import URL

from .auth import Authorizer
from .bodies import MAX_MANIFEST, MAX_TAG_PAGE, read_capped, read_head
from .endpoints import Endpoint
from .errors import RegistryError, TransportError, go_method, registry_error, transport_error

MAX_TAG_PAGES = 1000     # `pull --all-tags`: pages of a tag list followed, at most
MAX_TAGS = 100_000       # and tags collected
_CONNECT_TIMEOUT = 15.0
_READ_TIMEOUT = 60.0


def new_session() -> aiohttp.ClientSession:
    # Blobs are stored as sent: never undo a Content-Encoding. No proxies from the
    # environment: the daemon's traffic goes where the registry settings say.
    return aiohttp.ClientSession(
        auto_decompress=False, trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT,
                                      sock_connect=_CONNECT_TIMEOUT, sock_read=_READ_TIMEOUT))


def pull_scope(path: str) -> str:
    return f"repository:{path}:pull"


def push_scope(path: str) -> str:
    return f"repository:{path}:pull,push"


def origin(url: str | URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in, as Go's canonicalAddr."""
    u = url if isinstance(url, URL) else URL(url)
    return (u.scheme.lower(), (u.host or "").lower(), u.port)


class Registry:
    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint,
                 authorizer: Authorizer) -> None:
        self.session = session
        self.endpoint = endpoint
        self.auth = authorizer
        self._origin = origin(endpoint.url)

    def url(self, path: str) -> str:
        return self.endpoint.url + path

    def owns(self, url: str | URL) -> bool:
        """Whether `url` is the endpoint's own origin: the only place credentials go."""
        return origin(url) == self._origin

    async def ping(self) -> None:
        """GET /v2/: proves the endpoint speaks the protocol and learns its challenge."""
        url = self.url("/v2/")
        try:
            async with self.session.get(url, ssl=self.endpoint.ssl) as resp:
                await read_head(resp)
                if self.owns(resp.url):  # a redirect target's challenge is not ours
                    self.auth.pinged(resp.status, resp.headers.getall("WWW-Authenticate", []))
                if resp.status >= 400 and resp.status not in (401, 404):
                    raise TransportError(f'{go_method("GET")} "{url}": unexpected status '
                                         f"{resp.status} {resp.reason}")
        except aiohttp.ClientError as e:
            raise transport_error("GET", url, e) from None
        except TimeoutError as e:
            raise transport_error("GET", url, e) from None

    async def request(self, method: str, path_or_url: str, scopes: tuple[str, ...], *,
                      headers: dict[str, str] | None = None, data: Any = None,
                      replayable: bool = True, allow_redirects: bool = True
                      ) -> aiohttp.ClientResponse:
        """A request, authenticated when it goes to the endpoint's own origin; the
        caller reads and releases the response."""
        url = urljoin(self.endpoint.url + "/", path_or_url)
        what = f'{go_method(method)} "{url}"'
        ours = self.owns(url)
        for attempt in (1, 2):
            sent = dict(headers or {})
            if ours:
                sent.update(await self.auth.header(self.session, self.endpoint.ssl, scopes,
                                                   what))
            try:
                resp = await self.session.request(method, url, headers=sent, data=data,
                                                  ssl=self.endpoint.ssl,
                                                  allow_redirects=allow_redirects)
            except aiohttp.ClientError as e:
                raise transport_error(method, url, e) from None
            except TimeoutError as e:
                raise transport_error(method, url, e) from None
            # Only the endpoint's own challenge counts: a redirect target's is not ours.
            if resp.status != 401 or attempt == 2 or not replayable or not ours \
                    or not self.owns(resp.url):
                return resp
            changed = self.auth.learn(resp.headers.getall("WWW-Authenticate", []))
            if not changed and "Authorization" not in sent:
                return resp
            if not changed:
                self.auth.forget(scopes)  # a stale token: fetch a fresh one once
            resp.release()
        raise AssertionError("unreachable")

    async def check(self, resp: aiohttp.ClientResponse, *ok: int) -> None:
        """Raise the registry's error unless the status is one of `ok`."""
        if resp.status in ok:
            return
        body = b"" if resp.method == "HEAD" else await read_head(resp)
        resp.release()
        raise registry_error(resp.status, body, fallback=(
            f"{go_method(resp.method)} \"{resp.url}\": unexpected status "
            f"{resp.status} {resp.reason}" if resp.status != 401 else
            "unauthorized: authentication required"))

    # -- manifests -----------------------------------------------------------

    async def get_manifest(self, repo: str, reference: str, accept: str
                           ) -> tuple[bytes, str, str]:
        """(body, content type, Docker-Content-Digest header) of a manifest."""
        resp = await self.request("GET", f"/v2/{repo}/manifests/{reference}",
                                  (pull_scope(repo),), headers={"Accept": accept})
        async with resp:
            await self.check(resp, 200)
            body = await read_capped(resp, MAX_MANIFEST, f"manifest {reference}")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return body, ctype, resp.headers.get("Docker-Content-Digest", "")

    async def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str
                           ) -> str:
        resp = await self.request("PUT", f"/v2/{repo}/manifests/{reference}",
                                  (push_scope(repo),), data=body,
                                  headers={"Content-Type": media_type})
        async with resp:
            await self.check(resp, 201, 200, 202)
            return resp.headers.get("Docker-Content-Digest", "")

    async def list_tags(self, repo: str) -> list[str]:
        """Every tag, following `Link: next` (relative or absolute, as distribution's
        client does), within MAX_TAG_PAGES pages and MAX_TAGS tags."""
        tags: list[str] = []
        url = self.url(f"/v2/{repo}/tags/list")
        seen: set[str] = set()
        while url:
            if len(seen) == MAX_TAG_PAGES:
                raise RegistryError(f"tag list of {repo}: the registry paginates past "
                                    f"{MAX_TAG_PAGES} pages", 500)
            seen.add(url)
            resp = await self.request("GET", url, (pull_scope(repo),))
            async with resp:
                await self.check(resp, 200)
                body = await read_capped(resp, MAX_TAG_PAGE, f"tag list of {repo}")
                try:
                    doc = json.loads(body)
                    page = doc.get("tags") or []
                    if not isinstance(page, list):
                        raise ValueError("tags is not a list")
                except (ValueError, AttributeError) as e:
                    raise RegistryError(f"invalid tag list: {e}", 500) from None
                tags += [t for t in page if isinstance(t, str)]
                if len(tags) > MAX_TAGS:
                    raise RegistryError(f"tag list of {repo}: more than {MAX_TAGS} tags", 500)
                link = resp.links.get("next")
                url = str(link["url"]) if link else ""
                if url in seen:
                    raise RegistryError(f"tag list of {repo}: the next page link loops "
                                        f"back to {url}", 500)
        return tags

    # -- blobs ---------------------------------------------------------------

    async def get_blob(self, repo: str, digest: str) -> aiohttp.ClientResponse:
        resp = await self.request("GET", f"/v2/{repo}/blobs/{digest}", (pull_scope(repo),))
        await self.check(resp, 200)
        return resp

    async def has_blob(self, repo: str, digest: str) -> bool:
        resp = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", (push_scope(repo),))
        async with resp:
            if resp.status == 404:
                return False
            await self.check(resp, 200)
            return True

    async def start_upload(self, repo: str, *, mount: str = "", source: str = ""
                           ) -> tuple[bool, str]:
        """POST an upload (or a cross-repository mount). (mounted, upload location)."""
        scopes = (push_scope(repo),) + ((f"repository:{source}:pull",) if source else ())
        query = "?" + urlencode({"mount": mount, "from": source}) if mount else ""
        resp = await self.request("POST", f"/v2/{repo}/blobs/uploads/{query}", scopes,
                                  allow_redirects=False)
        async with resp:
            await self.check(resp, 201, 202)
            location = resp.headers.get("Location", "")
            if resp.status == 201:
                return True, location
            if not location:
                raise RegistryError("registry did not return an upload location", 500)
            return False, urljoin(str(resp.url), location)

    async def finish_upload(self, repo: str, location: str, digest: str, size: int,
                            body: AsyncIterable[bytes]) -> None:
        """Monolithic upload: PUT the whole blob to the location, with its digest."""
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}{urlencode({'digest': digest})}"
        resp = await self.request("PUT", url, (push_scope(repo),), data=body, replayable=False,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
        async with resp:
            await self.check(resp, 201, 204)

    async def cancel_upload(self, repo: str, location: str) -> None:
        try:
            resp = await self.request("DELETE", location, (push_scope(repo),))
            resp.release()
        except Exception:  # best effort: the registry expires abandoned uploads anyway
            pass
