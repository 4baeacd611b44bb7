"""Build benchmark: `docker build` of a multi-stage Dockerfile with a 50 MB context.

The context (written once under the scratch root, identical for both daemons):
  assets/   50 files of 1 MiB seeded pseudo-random (incompressible) data
  deps/     a few small manifest files
  src/      ten small shell scripts; src/main.sh is the file the "touch" rebuild edits
  Dockerfile  a meta ARG and five stages, 28 instructions in all: base, deps and assets (independent
            of each other: a builder may run them in parallel), build (COPY --from=deps, COPY
            src/, two RUN), runtime (COPY --from=build and --from=assets, metadata steps).
            RUN steps read the 50 MB (du, md5sum) and the sources; every stage is needed.

Per repetition and daemon (daemons interleaved: ours, ref, ref, ours, ...), after src/main.sh
is rewritten with the repetition number (so each repetition starts from sources neither
daemon has seen):
  cold    `docker build --no-cache -t bench/app:cold` - every step runs (checked: every RUN
          step prints " ---> Running in", none " ---> Using cache");
  cached  the same build without --no-cache - every step must come from the cache (checked:
          no " ---> Running in" in the output, and the same image ID as cold);
  touch   src/main.sh edited once more, then the same build - the steps before the first one
          reading src/ come from the cache, the rest run again (checked: the stages that do
          not read src/ print " ---> Using cache").
Each figure is the wall time of the CLI process, context upload included (both daemons
receive the same 50 MB tar from the CLI). Both daemons build with `--network host`: the
reference runs with `--bridge none`. Medians over the repetitions.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
from typing import Any

import daemons
from common import BenchError, Cli, interleaved, settle

TAG = "bench/app"
ASSET_FILES = 50
ASSET_BYTES = 1 << 20
SEED = 4242

DOCKERFILE = """\
ARG VERSION=1.0
FROM busybox AS base
ENV APP=/app
WORKDIR /app
RUN mkdir -p /app/bin /app/etc && echo base > /app/etc/base

FROM base AS deps
COPY deps/ /deps/
RUN cat /deps/* | sort > /app/etc/deps.lock

FROM base AS assets
COPY assets/ /assets/
RUN du -s /assets > /app/etc/assets.size && cat /assets/* | md5sum > /app/etc/assets.md5

FROM base AS build
ARG VERSION
COPY --from=deps /app/etc/deps.lock /app/etc/
COPY src/ /src/
RUN for f in /src/*.sh; do cp "$f" /app/bin/; done && chmod 755 /app/bin/*.sh
RUN echo "$VERSION" > /app/etc/version && ls /app/bin > /app/etc/manifest

FROM busybox AS runtime
ARG VERSION
LABEL org.opencontainers.image.version=$VERSION
COPY --from=build /app /app
COPY --from=assets /assets /app/assets
COPY --from=assets /app/etc/assets.size /app/etc/assets.md5 /app/etc/
ENV PATH=/app/bin:$PATH
EXPOSE 8080
USER nobody
WORKDIR /app
CMD ["main.sh"]
"""
STEPS = len([line for line in DOCKERFILE.splitlines() if line and not line.startswith("#")])
RUN_STEPS = len([line for line in DOCKERFILE.splitlines() if line.startswith("RUN ")])
MAIN = "#!/bin/sh\n# the service's entry point\necho \"app $(cat /app/etc/version)\"\n"


def make_context(scratch: str) -> str:
    """Writes the build context under scratch; returns its directory."""
    ctx = os.path.join(scratch, "build-context")
    rng = random.Random(SEED)
    for sub in ("assets", "deps", "src"):
        os.makedirs(os.path.join(ctx, sub), exist_ok=True)
    for i in range(ASSET_FILES):
        with open(os.path.join(ctx, "assets", f"blob-{i:02d}.bin"), "wb") as f:
            f.write(rng.randbytes(ASSET_BYTES))
    for name in ("alpha", "beta", "gamma", "delta"):
        with open(os.path.join(ctx, "deps", f"{name}.txt"), "w") as f:
            f.write(f"{name}=={rng.randint(1, 9)}.{rng.randint(0, 20)}\n")
    for i in range(9):
        with open(os.path.join(ctx, "src", f"lib{i}.sh"), "w") as f:
            f.write(f"#!/bin/sh\n# helper {i}\nlib{i}() {{ echo {i}; }}\n")
    write_main(ctx, "initial")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    return ctx


def write_main(ctx: str, marker: str) -> None:
    with open(os.path.join(ctx, "src", "main.sh"), "w") as f:
        f.write(MAIN + f"# {marker}\n")


def context_bytes(ctx: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(ctx)
               for n in names)


def _build(cli: Cli, d: daemons.Daemon, ctx: str, tag: str, *flags: str
           ) -> tuple[float, str]:
    """One `docker build`; (seconds, stdout). The built image must carry the tag."""
    secs, p = cli.timed(d, "build", "--network", "host", *flags, "-t", tag, ctx,
                        stdout=subprocess.PIPE)
    out = p.stdout.decode(errors="replace")
    if not re.search(rf"^Successfully tagged {re.escape(tag)}$", out, re.M):
        raise BenchError(f"{d.kind}: build of {tag} did not finish:\n{out[-2000:]}")
    return secs, out


def _image_id(cli: Cli, d: daemons.Daemon, tag: str) -> str:
    iid = cli.image_id(d, tag)
    if iid is None:
        raise BenchError(f"{d.kind}: {tag} missing after its build")
    return iid


def _step_blocks(out: str) -> dict[str, str]:
    """Instruction text -> the lines its step printed."""
    blocks = {}
    for block in out.split("\nStep ")[1:]:
        head, _, rest = block.partition("\n")
        blocks[head.split(" : ", 1)[1]] = rest
    return blocks


def phase_build(cli: Cli, ds: dict[str, daemons.Daemon], scratch: str,
                reps: int) -> dict[str, Any]:
    ctx = make_context(scratch)
    size = context_bytes(ctx)
    times: dict[str, dict[str, list[float]]] = {
        k: {"cold": [], "cached": [], "touch": []} for k in ds}
    checks: dict[str, dict[str, Any]] = {k: {"cold_ran_every_step": True,
                                             "cached_all_steps": True, "same_id": True,
                                             "touch_reused_cache": True} for k in ds}
    for rep in range(reps):
        for kind in interleaved(list(ds), rep):
            d = ds[kind]
            write_main(ctx, f"repetition {rep}")
            settle()
            t, out = _build(cli, d, ctx, f"{TAG}:cold", "--no-cache")
            times[kind]["cold"].append(t)
            if out.count(" ---> Running in ") < RUN_STEPS or " ---> Using cache" in out:
                checks[kind]["cold_ran_every_step"] = False
            cold_id = _image_id(cli, d, f"{TAG}:cold")

            t, out = _build(cli, d, ctx, f"{TAG}:cached")
            times[kind]["cached"].append(t)
            if " ---> Running in " in out:
                checks[kind]["cached_all_steps"] = False
            if _image_id(cli, d, f"{TAG}:cached") != cold_id:
                checks[kind]["same_id"] = False

            write_main(ctx, f"repetition {rep}, touched")
            t, out = _build(cli, d, ctx, f"{TAG}:touch")
            times[kind]["touch"].append(t)
            steps = _step_blocks(out)
            untouched = ("COPY assets/ /assets/", "COPY deps/ /deps/")
            if not all(" ---> Using cache" in steps.get(s, "") for s in untouched):
                checks[kind]["touch_reused_cache"] = False
            if " ---> Using cache" in steps.get("COPY src/ /src/", " ---> Using cache"):
                raise BenchError(f"{kind}: the touched source did not invalidate COPY src/")
    for d in ds.values():   # the images of every repetition, untimed
        for tag in ("cold", "cached", "touch"):
            cli.run(d, "rmi", f"{TAG}:{tag}", check=False)
        cli.run(d, "image", "prune", "-f", check=False)
        cli.run(d, "builder", "prune", "-f", check=False)

    def summary(samples: list[float]) -> dict[str, Any]:
        return {"seconds": samples, "median_s": statistics.median(samples),
                "median_ms": 1000 * statistics.median(samples), "min_s": min(samples)}

    return {"context_bytes": size, "steps": STEPS, "reps": reps,
            **{mode: {k: summary(times[k][mode]) for k in ds}
               for mode in ("cold", "cached", "touch")},
            "checks": checks}
