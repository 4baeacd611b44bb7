#!/usr/bin/env python3
"""Registry benchmark: docker pull / push of a 3-layer ~200 MB image, ours against
Docker 20.10's dockerd in the same run, both talking to Debian's docker-registry
(the reference registry) on 127.0.0.1.

The image is made here once: three layers of seeded pseudo-random (incompressible)
data, 120 + 50 + 30 MiB, gzip-compressed (as registries hold layers), uploaded with
a Docker schema 2 manifest to a source registry as bench/full (all three layers)
and bench/base (the first layer only). Every daemon pulls the same bytes.

Per repetition and daemon (daemons interleaved: ours, ref, ref, ours, ...):
  pull cold     nothing local; `docker pull SRC/bench/full` (all 3 layers travel)
  push cold     `docker push` of that image to a fresh, empty registry
  push shared   a second fresh registry that already has the base layer (pushed
                from bench/base, untimed): `docker push` of the full image; only
                layers 2 and 3 are uploaded
  pull shared   the full image removed, bench/base kept: `docker pull SRC/bench/full`;
                only layers 2 and 3 travel
Times are wall times of the CLI process; MB/s = bytes that had to travel / time.
What each daemon uploads differs: dockerd 20.10 compresses layers again for a
registry it has no record of pushing to (a new gzip, new digests); ours pushes the
blobs it pulled as they are (same digests, as containerd-backed Docker does).

  python bench/registry.py [--reps 3] [--no-reference]
  python bench/run.py --only registry
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import daemons  # noqa: E402
from common import Cli, interleaved, save_results  # noqa: E402

REGISTRY_BIN = "/usr/bin/docker-registry"
LAYER_MIB = (120, 50, 30)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


class Registry:
    def __init__(self, root: str) -> None:
        os.makedirs(root)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        config = os.path.join(root, "config.yml")
        with open(config, "w") as f:
            json.dump({"version": "0.1", "log": {"level": "error",
                                                 "accesslog": {"disabled": True}},
                       "storage": {"filesystem": {"rootdirectory": os.path.join(root, "data")}},
                       "http": {"addr": self.host, "secret": "bench"}}, f)
        self.log = open(os.path.join(root, "log"), "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2)
                return
            except OSError as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("docker-registry did not start") from e
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def upload(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.urlopen(urllib.request.Request(
            f"{self.url}/v2/{repo}/blobs/uploads/", method="POST"))
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        urllib.request.urlopen(urllib.request.Request(
            f"{location}{sep}digest={digest}", data=data, method="PUT",
            headers={"Content-Type": "application/octet-stream"}))
        return digest

    def put_manifest(self, repo: str, tag: str, body: bytes) -> None:
        urllib.request.urlopen(urllib.request.Request(
            f"{self.url}/v2/{repo}/manifests/{tag}", data=body, method="PUT",
            headers={"Content-Type": DOCKER_MANIFEST}))


def make_layers(seed: int = 42) -> list[tuple[bytes, str]]:
    """(gzip blob, diff ID) for each layer: one file of random bytes each."""
    rng = random.Random(seed)
    out = []
    for i, mib in enumerate(LAYER_MIB):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = mib << 20
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(rng.randbytes(mib << 20)))
        raw = buf.getvalue()
        out.append((gzip.compress(raw, compresslevel=1, mtime=0),
                    "sha256:" + hashlib.sha256(raw).hexdigest()))
    return out


def publish(src: Registry, layers: list[tuple[bytes, str]]) -> int:
    """bench/full (3 layers) and bench/base (layer 1) on the source registry; total bytes."""
    for repo, count in (("bench/full", 3), ("bench/base", 1)):
        descs = []
        for blob, _ in layers[:count]:
            descs.append({"mediaType": DOCKER_LAYER, "size": len(blob),
                          "digest": src.upload(repo, blob)})
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers[:count]]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                        for i in range(count)]}).encode()
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                               "digest": src.upload(repo, config)},
                    "layers": descs}
        src.put_manifest(repo, "latest", json.dumps(manifest, indent=3).encode())
    return sum(len(b) for b, _ in layers)


def timed(cli: Cli, d: daemons.Daemon, *args: str) -> float:
    t0 = time.perf_counter()
    cli.run(d, *args)
    return time.perf_counter() - t0


def forget(cli: Cli, d: daemons.Daemon, *refs: str) -> None:
    for ref in refs:
        cli.run(d, "rmi", "-f", ref, check=False)


def one_round(cli: Cli, d: daemons.Daemon, src: Registry, scratch: str, tag: str
              ) -> dict[str, float]:
    full, base = f"{src.host}/bench/full:latest", f"{src.host}/bench/base:latest"
    times: dict[str, float] = {}
    times["pull_cold"] = timed(cli, d, "pull", full)
    cold = Registry(os.path.join(scratch, f"cold-{tag}"))
    try:
        cli.run(d, "tag", full, f"{cold.host}/bench/pushed:latest")
        times["push_cold"] = timed(cli, d, "push", f"{cold.host}/bench/pushed:latest")
    finally:
        forget(cli, d, f"{cold.host}/bench/pushed:latest")
        cold.close()
    shared = Registry(os.path.join(scratch, f"shared-{tag}"))
    try:
        cli.run(d, "pull", base)
        cli.run(d, "tag", base, f"{shared.host}/bench/pushed:base")
        cli.run(d, "push", f"{shared.host}/bench/pushed:base")
        cli.run(d, "tag", full, f"{shared.host}/bench/pushed:full")
        times["push_shared"] = timed(cli, d, "push", f"{shared.host}/bench/pushed:full")
    finally:
        forget(cli, d, f"{shared.host}/bench/pushed:base", f"{shared.host}/bench/pushed:full")
        shared.close()
    forget(cli, d, full)
    times["pull_shared"] = timed(cli, d, "pull", full)
    forget(cli, d, full, base)
    return times


def run_bench(cli: Cli, ds: dict[str, daemons.Daemon], scratch: str, reps: int
              ) -> dict[str, Any]:
    print(f"registry: making {sum(LAYER_MIB)} MiB of layers ...", flush=True)
    layers = make_layers()
    src = Registry(os.path.join(scratch, "source"))
    try:
        total = publish(src, layers)
        shared_bytes = sum(len(b) for b, _ in layers[1:])
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in ds}
        for rep in range(reps):
            for kind in interleaved(list(ds), rep):
                got = one_round(cli, ds[kind], src, scratch, f"{kind}-{rep}")
                for key, value in got.items():
                    samples[kind].setdefault(key, []).append(value)
                print(f"  rep {rep + 1} {kind:9s} " + "  ".join(
                    f"{k} {v:6.2f}s" for k, v in got.items()), flush=True)
    finally:
        src.close()
    out: dict[str, Any] = {"layer_mib": LAYER_MIB, "bytes_total": total,
                           "bytes_shared_case": shared_bytes, "samples": samples}
    out["median_s"] = {k: {op: statistics.median(v) for op, v in s.items()}
                       for k, s in samples.items()}
    return out


def report(result: dict[str, Any]) -> None:
    med = result["median_s"]
    sizes = {"pull_cold": result["bytes_total"], "push_cold": result["bytes_total"],
             "pull_shared": result["bytes_shared_case"],
             "push_shared": result["bytes_shared_case"]}
    print(f"\n{'registry (median)':24s} {'ours':>10s} {'reference':>10s} {'ref/ours':>9s}")
    for op in ("pull_cold", "pull_shared", "push_cold", "push_shared"):
        ours = med.get("ours", {}).get(op)
        ref = med.get("reference", {}).get(op)
        ratio = f"{ref / ours:9.2f}" if ours and ref else f"{'-':>9s}"
        cells = [f"{v:9.2f}s" if v is not None else f"{'-':>10s}" for v in (ours, ref)]
        mb = sizes[op] / 1e6
        print(f"{op:24s} {cells[0]} {cells[1]} {ratio}   ({mb:.0f} MB gzip to move; "
              f"ours {mb / ours:.0f} MB/s)" if ours else f"{op:24s} {cells[0]} {cells[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    if not os.path.exists(REGISTRY_BIN):
        print("docker-registry is not installed", file=sys.stderr)
        return 2
    daemons.install_signal_handlers()
    kinds = ["ours"]
    if not args.no_reference and os.path.exists(daemons.REFERENCE_DOCKERD):
        kinds.append("reference")
    with daemons.DaemonSet(kinds) as dset:
        for kind, err in dset.start().items():
            print(f"warning: {kind} did not start: {err}", file=sys.stderr)
        cli = Cli(shutil.which("docker") or "docker", dset.cli_config)
        scratch = tempfile.mkdtemp(prefix="registries-", dir=dset.root)
        result = run_bench(cli, dset.daemons, scratch, args.reps)
    report(result)
    print(f"\nresults: {save_results(result, 'registry')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
