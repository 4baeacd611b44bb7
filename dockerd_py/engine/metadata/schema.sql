-- dockerd-py metadata: the single source of truth for names and records.
-- Bytes live elsewhere: blobs in content/blobs/sha256/<hex>, unpacked layers
-- in snapshots/<id>/fs. A row only ever points at content that was complete
-- before the row was committed; the garbage collector removes what no row
-- (and no live lease) reaches.
--
--  images ──< image_layers (diff_id, blob_digest)        blobs: config = images.id,
--    │  └──< tags      (docker.io/library/x:tag)                manifest_digest,
--    │  └──< digests   (docker.io/library/x@sha256:...)          image_layers.blob_digest
--    └── top_chain ──> snapshots.name ──> parent ──> ... (committed snapshots)
--  containers ── image_id ──> images.id; id ──> snapshots.name (its active snapshot)
--    └── mounts (JSON) name volumes by name ──> volumes.name

PRAGMA user_version = 1;

CREATE TABLE IF NOT EXISTS images (
    id              TEXT PRIMARY KEY,      -- "sha256:<hex>" of the config blob
    config          TEXT NOT NULL,         -- the config JSON (also in the content store)
    manifest_digest TEXT NOT NULL DEFAULT '',
    parent          TEXT NOT NULL DEFAULT '',  -- local parent image (build/commit)
    top_chain       TEXT NOT NULL DEFAULT '',  -- chain ID of the top layer, '' if none
    size            INTEGER NOT NULL,      -- unpacked size of all layers
    created         TEXT NOT NULL,         -- "created" of the config (RFC 3339)
    added_seq       INTEGER NOT NULL,      -- monotonic insertion order (before/since)
    last_tag_time   TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    diff_id     TEXT NOT NULL,
    chain_id    TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    blob_size   INTEGER NOT NULL,
    size        INTEGER NOT NULL,          -- unpacked size of this layer
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_blob ON image_layers(blob_digest);

CREATE TABLE IF NOT EXISTS tags (
    ref      TEXT PRIMARY KEY,             -- normalized, e.g. docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);

CREATE TABLE IF NOT EXISTS digests (
    ref      TEXT PRIMARY KEY,             -- e.g. docker.io/library/busybox@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS digests_image ON digests(image_id);

-- Snapshots, as containerd's snapshotter: an active snapshot has a key and is
-- writable; committing it gives it a name (a layer chain ID). Only committed
-- snapshots can be parents. The directory is snapshots/<id>.
CREATE TABLE IF NOT EXISTS snapshots (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL UNIQUE,          -- chain ID when committed, key when active
    parent  TEXT NOT NULL DEFAULT '',      -- name of the parent snapshot
    kind    TEXT NOT NULL CHECK (kind IN ('active', 'committed')),
    size    INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);

-- Containers: the record dockerd keeps (config.v2.json + hostconfig.json),
-- as JSON documents in Docker API shape. The active snapshot is named by id.
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,      -- without the leading "/"
    image       TEXT NOT NULL,             -- Config.Image as the client gave it
    image_id    TEXT NOT NULL,             -- images.id; removal refused while in use
    created     TEXT NOT NULL,             -- RFC 3339
    seq         INTEGER NOT NULL,          -- creation order (before/since, ps -n)
    config      TEXT NOT NULL,             -- Config, merged with the image's defaults
    host_config TEXT NOT NULL,             -- HostConfig
    networking  TEXT NOT NULL DEFAULT '{}',-- NetworkingConfig as created / connected
    mounts      TEXT NOT NULL DEFAULT '[]',-- resolved mount points
    state       TEXT NOT NULL              -- State: Status, Pid, ExitCode, StartedAt, ...
);

-- Named and anonymous volumes of the local driver (data in volumes/<name>/_data).
CREATE TABLE IF NOT EXISTS volumes (
    name      TEXT PRIMARY KEY,
    driver    TEXT NOT NULL DEFAULT 'local',
    options   TEXT NOT NULL DEFAULT '{}',  -- driver options (JSON): type, device, o
    labels    TEXT NOT NULL DEFAULT '{}',  -- JSON
    anonymous INTEGER NOT NULL DEFAULT 0,  -- created for an unnamed -v /path
    created   TEXT NOT NULL                -- RFC 3339
);

-- Networks (`docker network create` and the predefined bridge/host/none), as a
-- JSON document of engine/networks/records.Network.
CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);

-- A running container's attachment to a network (interface, address, MAC, ports):
-- the IPAM allocation, and what the next daemon must tear down if it exited meanwhile.
CREATE TABLE IF NOT EXISTS network_endpoints (
    container_id TEXT NOT NULL,
    network_id   TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (container_id, network_id)
);

-- Build cache (builder/cache.py): a build step's key -> the image it produced.
-- The key digests the parent image ID, the step's command line (with the
-- content digests of the files COPY/ADD read) and the run config it ran with,
-- so a hit yields the very same image. Removing the image drops its entries.
CREATE TABLE IF NOT EXISTS build_cache (
    key         TEXT PRIMARY KEY,          -- "sha256:<hex>"
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    parent      TEXT NOT NULL DEFAULT '',  -- parent image ID ('' for FROM scratch)
    description TEXT NOT NULL,             -- the step's created_by
    created     TEXT NOT NULL,             -- RFC 3339
    last_used   TEXT NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
