"""BuildKit build benchmark: the build phase's multi-stage Dockerfile and 50 MB context
(bench/build.py), built through the stock buildx plugin (`docker buildx build`, the
docker driver: BuildKit's /grpc and /session endpoints) on our daemon and on Docker's
dockerd 20.10 with its built-in BuildKit, in the same run.

Per repetition and daemon (interleaved), after src/main.sh is rewritten:
  cold    `--no-cache` - every step runs (recorded: whether any RUN/COPY step of the
          plain progress says CACHED);
  cached  the same build - every RUN/COPY step comes from the cache (recorded: how many
          RUN/COPY steps say CACHED, and whether the image ID is the cold build's);
  touch   src/main.sh edited, then the same build - COPY src/ and what follows run again,
          the stages that do not read src/ are CACHED (recorded: the CACHED count).
Wall time of the CLI process (context transfer through the session included), medians.
Both daemons build with --network host. The CLI config holds the buildx plugin only.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from typing import Any

import daemons
from build import RUN_STEPS, STEPS, make_context, write_main
from common import BenchError, Cli, interleaved, settle

TAG = "bench/bxapp"
BUILDX = os.environ.get("DPY_BUILDX", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "tools",
    "docker-buildx"))


def buildx_cli(cli: Cli, scratch: str) -> Cli:
    """A CLI whose config directory has the buildx plugin."""
    config = os.path.join(scratch, "cli-buildx")
    os.makedirs(os.path.join(config, "cli-plugins"), exist_ok=True)
    plugin = BUILDX if os.path.exists(BUILDX) else "/work/shared/tools/docker-buildx"
    shutil.copy(plugin, os.path.join(config, "cli-plugins", "docker-buildx"))
    return Cli(cli.docker, config)


def _build(cli: Cli, d: daemons.Daemon, ctx: str, tag: str, *flags: str
           ) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([cli.docker, "buildx", "build", "--progress=plain", "--network", "host",
                        *flags, "-t", tag, ctx], env=d.env(cli.config_dir),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    secs = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise BenchError(f"{d.kind}: buildx build of {tag} failed:\n{out[-3000:]}")
    return secs, out


def _cached_steps(out: str) -> int:
    """RUN and COPY steps the progress shows as CACHED (a FROM of a local image may show
    CACHED even with --no-cache in BuildKit's output)."""
    names = dict(re.findall(r"^#(\d+) (\[.*)$", out, re.M))
    return sum(1 for n in re.findall(r"^#(\d+) CACHED$", out, re.M)
               if re.search(r"\] (RUN|COPY) ", names.get(n, "")))


def phase_buildx(cli: Cli, ds: dict[str, daemons.Daemon], scratch: str,
                 reps: int) -> dict[str, Any]:
    bcli = buildx_cli(cli, scratch)
    ctx = make_context(scratch)
    times: dict[str, dict[str, list[float]]] = {
        k: {"cold": [], "cached": [], "touch": []} for k in ds}
    checks: dict[str, dict[str, Any]] = {k: {"cold_no_cache_hits": True,
                                             "cached_steps": [], "touch_cached_steps": [],
                                             "same_id": True} for k in ds}
    for rep in range(reps):
        for kind in interleaved(list(ds), rep):
            d = ds[kind]
            write_main(ctx, f"buildx repetition {rep}")
            settle()
            t, out = _build(bcli, d, ctx, f"{TAG}:cold", "--no-cache")
            times[kind]["cold"].append(t)
            if _cached_steps(out):
                checks[kind]["cold_no_cache_hits"] = False
            cold_id = bcli.image_id(d, f"{TAG}:cold")

            t, out = _build(bcli, d, ctx, f"{TAG}:cached")
            times[kind]["cached"].append(t)
            checks[kind]["cached_steps"].append(_cached_steps(out))
            if bcli.image_id(d, f"{TAG}:cached") != cold_id:
                checks[kind]["same_id"] = False

            write_main(ctx, f"buildx repetition {rep}, touched")
            t, out = _build(bcli, d, ctx, f"{TAG}:touch")
            times[kind]["touch"].append(t)
            checks[kind]["touch_cached_steps"].append(_cached_steps(out))
    for d in ds.values():
        for tag in ("cold", "cached", "touch"):
            bcli.run(d, "rmi", f"{TAG}:{tag}", check=False)
        bcli.run(d, "builder", "prune", "-af", check=False)

    def summary(samples: list[float]) -> dict[str, Any]:
        return {"seconds": samples, "median_s": statistics.median(samples),
                "median_ms": 1000 * statistics.median(samples), "min_s": min(samples)}

    return {"steps": STEPS, "run_steps": RUN_STEPS, "reps": reps,
            **{mode: {k: summary(times[k][mode]) for k in ds}
               for mode in ("cold", "cached", "touch")},
            "checks": checks}
