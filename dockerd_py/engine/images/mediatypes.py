"""Media types and small helpers for image documents."""

from __future__ import annotations

import datetime
import time

from ..archive import detect_compression

# The one RFC 3339 parser lives in engine/timestamps; re-exported only for the callers in
# builder/service.py and api/build.py, which another change is editing.

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)


def layer_media_type(head: bytes) -> str:
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(detect_compression(head), OCI_LAYER)


def rfc3339_nano(ns: int) -> str:
    """UTC time of ns since the epoch, as Go's RFC3339Nano prints it."""
    when = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")  # Go drops trailing zeros (and the dot)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def now_rfc3339() -> str:
    return rfc3339_nano(time.time_ns())
