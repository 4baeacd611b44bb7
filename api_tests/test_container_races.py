"""Concurrent requests on containers: whatever order they land in, the outcome is
one Docker could give, and nothing is lost or left half-done."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import docker.errors


def test_remove_racing_start_never_removes_a_started_container(
        dockerpy: Any, busybox_image: str, unique_name: Callable[..., str]) -> None:
    api = dockerpy.api
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for _ in range(6):
            cid = api.create_container(busybox_image, ["sleep", "300"],
                                       name=unique_name("race"))["Id"]
            start = pool.submit(api.start, cid)
            remove = pool.submit(api.remove_container, cid)
            outcomes = []
            for future in (start, remove):
                try:
                    future.result()
                    outcomes.append("ok")
                except docker.errors.APIError as e:
                    outcomes.append(e.status_code)
            try:
                state = api.inspect_container(cid)["State"]["Status"]
            except docker.errors.NotFound:
                state = "gone"
            # Either the removal came first (the start then finds nothing), or the start
            # did and the removal was refused: never both succeeding.
            assert (outcomes, state) in ((["ok", 409], "running"), ([404, "ok"], "gone"),
                                         ([409, "ok"], "gone")), (outcomes, state)
            if state != "gone":
                api.remove_container(cid, force=True)


def test_creates_racing_garbage_collection_keep_their_snapshots(
        dockerpy: Any, busybox_image: str, unique_name: Callable[..., str]) -> None:
    api = dockerpy.api

    def churn() -> None:  # each removal schedules a garbage collection
        for _ in range(15):
            cid = api.create_container(busybox_image, ["true"])["Id"]
            api.remove_container(cid)

    created: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        background = pool.submit(churn)
        for _ in range(15):
            created.append(api.create_container(busybox_image, ["true"],
                                                name=unique_name("gc"))["Id"])
        background.result()
    try:
        for cid in created:
            api.start(cid)
            assert api.wait(cid)["StatusCode"] == 0
    finally:
        for cid in created:
            api.remove_container(cid, force=True)
