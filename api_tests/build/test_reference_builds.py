"""The corpus built by Docker 20.10's legacy builder (Debian's docker.io, started for this
module on its own socket and roots) and by ours: the same image configs, history and file
trees, the same steps printed, the same errors.

The checks: the expectations test_corpus.py asserts on our daemon hold on the reference
(so they state the reference's behaviour, not ours); each case's image from our daemon
equals the reference's (runtime config, history with empty_layer flags and authors,
layer count, file tree); `docker build --no-cache` prints the same lines, IDs aside; a
malformed Dockerfile or failing step ends with the same message and exit status.
Skipped when /usr/sbin/dockerd is missing or does not start. The reference runs with
`--bridge none`, so both daemons build with `--network host`. Where the issue asks for
BuildKit's behaviour instead, the reference is not consulted (NOT_ON_REFERENCE below).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..test_reference_interop import Reference, started_reference
from . import test_corpus as checks
from .corpus import (
    CASES,
    FAILING_STEPS,
    MALFORMED,
    Entry,
    error_params,
    history_view,
    image_tree,
    runtime_config,
    saved_config,
)
from .corpus.harness import Corpus, ensure_busybox, serve_web

NETWORK = ("--network", "host")

# Cases and checks not run on the reference, and why: mostly what the issue asks to do as
# BuildKit does, where Docker 20.10's legacy builder differs.
NOT_ON_REFERENCE: dict[str, str] = {
    "heredoc": "heredocs are BuildKit syntax; the legacy builder rejects them",
    "copy-chmod": "--chmod is BuildKit-only; the legacy builder rejects it",
    "test_multistage_builds_only_what_the_target_needs":
        "the legacy builder builds every stage before the target, needed or not",
    "test_multistage_intermediate_target_and_default_target":
        "the legacy builder builds every stage before the target, needed or not",
    "test_no_build_containers_are_left":
        "the legacy builder keeps the container of a failed RUN unless --force-rm",
    "test_failing_run_reports_the_command_and_exit_code":
        "the legacy builder keeps the container of a failed RUN unless --force-rm",
    "test_failed_builds_leave_no_containers":
        "the legacy builder keeps the container of a failed RUN unless --force-rm",
    "test_heredocs_follow_buildkit_semantics": "heredocs are BuildKit syntax",
    "test_copy_chmod_follows_buildkit_semantics": "--chmod is BuildKit-only",
    "test_build_output_is_valid_json_stream": "a docker-py check of our stream only",
    "test_docker_py_builds_and_gets_the_image": "a docker-py check against ours only",
    "test_dockerignore_applies_to_a_context_tar_on_stdin":
        "the legacy builder does not apply .dockerignore to a tar context; BuildKit does",
    "test_cache_survives_a_daemon_restart": "restarts the session's daemon (ours)",
    "test_independent_stages_run_concurrently": "the legacy builder runs stages in order",
    "test_identical_copy_steps_give_identical_layers":
        "the legacy builder stamps the directories it creates with the build time",
}


@pytest.fixture(scope="module")
def reference(busybox_tar: Path) -> Iterator[Reference]:
    with started_reference("dpyrefb-") as ref:
        ensure_busybox(ref.run, busybox_tar)
        yield ref


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with serve_web() as url:
        yield url


@pytest.fixture(scope="module")
def ref_corpus(reference: Reference, web: str) -> Iterator[Corpus]:
    c = Corpus(reference.run, reference.env, web, "refcorpus", *NETWORK)
    yield c
    c.remove_all()


@pytest.fixture(scope="module")
def our_corpus(docker: Any, daemon: Any, busybox_tar: Path,
               web: str) -> Iterator[Corpus]:
    ensure_busybox(docker, busybox_tar)
    c = Corpus(docker, daemon.cli_env(), web, "ourcorpus", *NETWORK)
    yield c
    c.remove_all()


@pytest.fixture(scope="module")
def ref_base_tree(reference: Reference) -> dict[str, Entry]:
    return image_tree(reference.run, "busybox:latest")


# --- the corpus expectations hold on the reference --------------------------------------------

def _check_calls() -> list[Any]:
    """(check function name, parameters) for every check in test_corpus the reference runs."""
    calls: list[Any] = []
    for name, _ in inspect.getmembers(checks, inspect.isfunction):
        if not name.startswith("test_") or name in NOT_ON_REFERENCE:
            continue
        if name == "test_case_builds_with_the_legacy_progress_stream":
            calls += [pytest.param(name, {"name": n}, id=f"{name}[{n}]")
                      for n in sorted(CASES) if n not in NOT_ON_REFERENCE]
        elif name in ("test_malformed_dockerfile", "test_failing_step"):
            table = MALFORMED if name == "test_malformed_dockerfile" else FAILING_STEPS
            calls += [pytest.param(name, {"dockerfile": d, "message": m}, id=f"{name}[{m[:40]}]")
                      for d, m in table]   # on the reference: no xfail, these must hold
        else:
            calls.append(pytest.param(name, {}, id=name))
    return calls


@pytest.mark.parametrize("check,params", _check_calls())
def test_corpus_expectations_hold_on_the_reference(
        check: str, params: dict[str, Any], reference: Reference, ref_corpus: Corpus,
        ref_base_tree: dict[str, Entry], tmp_path: Path):
    fn: Callable[..., None] = getattr(checks, check)
    available = {"corpus": ref_corpus, "docker": reference.run, "base_tree": ref_base_tree,
                 "tmp_path": tmp_path}
    fn(**{k: v for k, v in available.items() if k in inspect.signature(fn).parameters},
       **params)


# --- our images equal the reference's ---------------------------------------------------------

COMPARABLE = sorted(n for n in CASES if n not in NOT_ON_REFERENCE)
# cases with a stage the target does not need: the reference builds it (and prints its
# steps), ours skips it, as BuildKit does; their images must still be equal
SKIPS_STAGES = {"multistage", "app"}


def _image_view(run: Any, tag: str) -> dict[str, Any]:
    config = saved_config(run, tag)
    return {"config": runtime_config(config), "history": history_view(config),
            "layers": len(config["rootfs"]["diff_ids"]), "author": config.get("author", ""),
            "os": config.get("os"), "architecture": config.get("architecture")}


@pytest.mark.parametrize("name", COMPARABLE)
def test_same_image_as_the_reference(name: str, reference: Reference, ref_corpus: Corpus,
                                     our_corpus: Corpus, docker: Any):
    ours, theirs = our_corpus.build(name), ref_corpus.build(name)
    assert ours.proc.returncode == theirs.proc.returncode, ours.proc.stderr
    if name not in SKIPS_STAGES:  # ours builds only the stages the target needs
        assert [s[2] for s in ours.steps] == [s[2] for s in theirs.steps]
    if not theirs.ok:
        assert ours.proc.stderr.splitlines()[-1] == theirs.proc.stderr.splitlines()[-1]
        return
    ours_view, ref_view = _image_view(docker, ours.tag), _image_view(reference.run, theirs.tag)
    for key in ref_view:
        assert ours_view[key] == ref_view[key], f"{key} differs"
    ours_tree, ref_tree = image_tree(docker, ours.tag), image_tree(reference.run, theirs.tag)
    missing = sorted(set(ref_tree) - set(ours_tree))
    extra = sorted(set(ours_tree) - set(ref_tree))
    differing = {k: (ours_tree[k], ref_tree[k]) for k in set(ours_tree) & set(ref_tree)
                 if ours_tree[k] != ref_tree[k]}
    assert (missing, extra, differing) == ([], [], {}), "file trees differ (ours, reference)"


@pytest.mark.parametrize("name", ["misc-edges", "app"])
def test_our_built_image_loads_in_the_reference(name: str, reference: Reference,
                                                our_corpus: Corpus, docker: Any,
                                                tmp_path: Path):
    """Our layers are layers Docker reads the same way: `docker save` here, `docker load`
    there gives the same image ID and file tree (misc-edges deletes files and remakes a
    directory: whiteouts and an opaque directory)."""
    ours = our_corpus.build(name)
    assert ours.ok, ours.proc.stderr
    archive = tmp_path / "image.tar"
    docker("save", "-o", archive, ours.tag)
    loaded = reference.run("load", "-i", archive).stdout
    assert loaded == f"Loaded image: {ours.tag}\n"
    try:
        iid = docker("image", "inspect", "-f", "{{.Id}}", ours.tag).stdout
        assert reference.run("image", "inspect", "-f", "{{.Id}}", ours.tag).stdout == iid
        assert image_tree(reference.run, ours.tag) == image_tree(docker, ours.tag)
    finally:
        reference.run("rmi", ours.tag, check=False)


def _normalized_output(stdout: str) -> list[str]:
    """stdout with IDs as <id> (20.10 prints a container pair, " ---> Running in" and
    "Removing intermediate container", even for steps that only change the config)."""
    return re.sub(r"\b[0-9a-f]{12}\b", "<id>", stdout).splitlines()


@pytest.mark.parametrize("name", [n for n in COMPARABLE if n not in SKIPS_STAGES])
def test_same_output_as_the_reference(name: str, reference: Reference, ref_corpus: Corpus,
                                      our_corpus: Corpus):
    """`docker build --no-cache` prints the same lines on both daemons, IDs aside."""
    ours = our_corpus.build_with(name, "--no-cache")
    theirs = ref_corpus.build_with(name, "--no-cache")
    assert _normalized_output(ours.proc.stdout) == _normalized_output(theirs.proc.stdout)


@pytest.mark.parametrize("dockerfile,message", error_params(MALFORMED + FAILING_STEPS))
def test_same_error_as_the_reference(dockerfile: str, message: str, reference: Reference,
                                     docker: Any, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "present.txt").write_text("present\n")
    results = [run("build", *NETWORK, tmp_path, check=False) for run in (docker, reference.run)]
    ours, theirs = results
    assert ours.returncode == theirs.returncode
    assert ours.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1]
