"""Health checks: Config.Healthcheck probes run as exec sessions, as dockerd's health.go.

A started container whose Healthcheck.Test is `CMD ...` or `CMD-SHELL ...` (not
`NONE`) gets State.Health = {Status: "starting", FailingStreak: 0, Log: [...]} and a
monitor task. The first probe runs one interval after the start (StartInterval
while starting within StartPeriod; never later than the end of StartPeriod),
then one interval after the end of each probe. A probe is an exec of Test[1:]
(CMD-SHELL: ["/bin/sh", "-c", cmd], or Config.Shell) with the container's user,
working directory and environment, stdout and stderr kept together (at most 4096
bytes, "..." when cut). Running past Timeout, the probe is killed and counts as
exit code -1 ("Health check exceeded timeout (30s)"); an exec that cannot start
also counts -1 with its error as output.

Exit code 0 makes the container healthy and resets FailingStreak; anything else
increments it (except while still starting within StartPeriod) and Retries
failures in a row make it unhealthy. Log keeps the last 5 results. A change of
status emits `health_status: healthy|unhealthy`. The state is saved with the
container after every probe. When the container stops the monitor ends and the
status becomes "unhealthy" (dockerd does this too, for compatibility); a paused
container is not probed.

Durations in the config are nanoseconds; 0 means the default (interval and
timeout 30s, start period 0, start interval 5s, retries 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from ...errors import DaemonError
from ..images.mediatypes import now_rfc3339
from ..runtime.process import Process
from ..timestamps import parse_time
from .exec import ExecService
from .records import Container
from .store import ContainerStore

log = logging.getLogger(__name__)

MAX_OUTPUT = 4096
MAX_LOG_ENTRIES = 5
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
EXEC_START_TIMEOUT = 30.0

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() of a time in seconds: 30s, 1.5s, 500ms, 1m30s, 2h0m0s."""
    return go_duration_ns(round(seconds * 1e9))


def go_duration_ns(ns: int) -> str:
    """Go's time.Duration.String() of a time in nanoseconds."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                whole, frac = divmod(ns, size)
                digits = f"{frac:0{len(str(size)) - 1}d}".rstrip("0") if size > 1 else ""
                return f"{sign}{whole}{'.' + digits if digits else ''}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs, frac = divmod(rest, 1_000_000_000)
    digits = f"{frac:09d}".rstrip("0")
    text = f"{secs}{'.' + digits if digits else ''}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _seconds(value: Any, default: float) -> float:
    try:
        ns = int(value or 0)
    except (TypeError, ValueError):
        ns = 0
    return ns / 1e9 if ns > 0 else default


def probe_command(c: Container) -> list[str] | None:
    """The argv a probe runs, or None when the container has no (usable) healthcheck."""
    check = c.config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test:
        return None
    kind, args = test[0], [str(a) for a in test[1:]]
    if kind == "CMD" and args:
        return args
    if kind == "CMD-SHELL" and args:
        shell = [str(s) for s in c.config.get("Shell") or []] or ["/bin/sh", "-c"]
        return shell + args
    if kind not in ("CMD", "CMD-SHELL", "NONE"):
        log.warning("Unknown healthcheck type '%s' (expected 'CMD') in container %s",
                    kind, c.id)
    return None


class _Output:
    """Probe output up to MAX_OUTPUT bytes; "..." marks that more was discarded."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        room = MAX_OUTPUT - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    def text(self) -> str:
        return self.data.decode(errors="replace") + ("..." if self.truncated else "")


class HealthChecks:
    """One monitor task per running container with a healthcheck. Probes are exec
    sessions of their own (dockerd registers them too, and emits exec_create,
    exec_start and exec_die for them); finished ones are dropped."""

    def __init__(self, store: ContainerStore, execs: ExecService) -> None:
        self.store = store
        self.execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle hooks (called by the container service) ---------------------------

    async def started(self, c: Container, proc: Process) -> None:
        """After a start: health "starting" (the Log of earlier runs is kept), monitor on."""
        self.removed(c.id)
        if probe_command(c) is None:
            return
        current = self.store.find(c.id) or c
        health = dict(current.state.health or {})
        health.update(Status=STARTING, FailingStreak=0)
        health.setdefault("Log", [])
        health = {"Status": health["Status"], "FailingStreak": health["FailingStreak"],
                  "Log": health["Log"]}
        await self.store.save(current.with_state(health=health))
        self._spawn(c.id)

    def restored(self, c: Container, proc: Process) -> None:
        """A container found running after a daemon restart: its monitor on again."""
        if probe_command(c) is not None and c.id not in self._tasks:
            self._spawn(c.id)

    async def exited(self, cid: str) -> None:
        """After an exit: monitor off; a monitored container turns "unhealthy"."""
        self.removed(cid)
        c = self.store.find(cid)
        if c is None or c.state.health is None or probe_command(c) is None:
            return
        if c.state.health.get("Status") != UNHEALTHY:
            health = dict(c.state.health, Status=UNHEALTHY)
            await self.store.save(c.with_state(health=health))

    def removed(self, cid: str) -> None:
        """Monitor off (the container exited or is removed)."""
        task = self._tasks.pop(cid, None)
        if task is not None:
            task.cancel()

    def _spawn(self, cid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._monitor(cid))
        self._tasks[cid] = task
        task.add_done_callback(lambda t: self._tasks.get(cid) is t and self._tasks.pop(cid))

    # -- the monitor ----------------------------------------------------------------------

    def _interval(self, c: Container) -> float:
        check = c.config.get("Healthcheck") or {}
        interval = _seconds(check.get("Interval"), DEFAULT_INTERVAL)
        start_period = _seconds(check.get("StartPeriod"), DEFAULT_START_PERIOD)
        start_interval = _seconds(check.get("StartInterval"), DEFAULT_START_INTERVAL)
        elapsed = time.time() - parse_time(c.state.started_at)
        if elapsed >= start_period:
            return interval
        remaining = start_period - elapsed
        if remaining < interval:
            return remaining
        if (c.state.health or {}).get("Status") == STARTING:
            return start_interval
        return interval

    async def _monitor(self, cid: str) -> None:
        me = asyncio.current_task()
        try:
            while True:
                c = self.store.find(cid)
                if c is None or not c.state.running:
                    return
                await asyncio.sleep(self._interval(c))
                c = self.store.find(cid)
                if c is None or not c.state.running:
                    return
                if c.state.status == "paused":
                    continue
                started = now_rfc3339()
                code, output = await self._probe(c)
                result = {"Start": started, "End": now_rfc3339(), "ExitCode": code,
                          "Output": output}
                await self._record(cid, me, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health check monitor of container %s failed", cid)

    async def _record(self, cid: str, me: asyncio.Task[Any] | None,
                      result: dict[str, Any]) -> None:
        """handleProbeResult: the new State.Health, saved; an event if the status changed."""
        if self._tasks.get(cid) is not me:
            return  # stopped (or removed) while probing: no lock for a removed container
        async with self.store.lock(cid):
            if self._tasks.get(cid) is not me:
                return  # stopped while probing: the result is void
            c = self.store.find(cid)
            if c is None or not c.state.running:
                return
            check = c.config.get("Healthcheck") or {}
            retries = int(check.get("Retries") or 0)
            retries = retries if retries > 0 else DEFAULT_RETRIES
            health = dict(c.state.health or {"Status": STARTING, "FailingStreak": 0})
            old = health.get("Status") or UNHEALTHY
            entries = list(health.get("Log") or [])
            entries.append(result)
            health["Log"] = entries[-MAX_LOG_ENTRIES:]
            streak = int(health.get("FailingStreak") or 0)
            status = old
            if result["ExitCode"] == 0:
                streak, status = 0, HEALTHY
            else:
                counts = True
                if old == STARTING:
                    start_period = _seconds(check.get("StartPeriod"), DEFAULT_START_PERIOD)
                    since_start = parse_time(result["Start"]) - parse_time(c.state.started_at)
                    counts = since_start >= start_period
                if counts:
                    streak += 1
                    if streak >= retries:
                        status = UNHEALTHY
            health = {"Status": status, "FailingStreak": streak, "Log": health["Log"]}
            c = await self.store.save(c.with_state(health=health))
        if status != old:
            self.store.event(c, f"health_status: {status}")

    async def _probe(self, c: Container) -> tuple[int, str]:
        """One run of the check: (exit code, output); -1 for a timeout or an exec error."""
        argv = probe_command(c)
        assert argv is not None
        check = c.config.get("Healthcheck") or {}
        timeout = _seconds(check.get("Timeout"), DEFAULT_TIMEOUT)
        execs = self.execs
        session = None
        try:
            session = execs.create(c.id, {"Cmd": argv, "AttachStdout": True,
                                          "AttachStderr": True, "Tty": False})
            try:
                stream = await asyncio.wait_for(execs.start(session.id, detach=False),
                                                EXEC_START_TIMEOUT)
            except TimeoutError:
                return -1, f"timed out starting health check for container {c.id}"
            assert stream is not None
            output = _Output()

            async def run() -> None:
                while (item := await stream.recv()) is not None:
                    output.write(item[1])
                await session.done.wait()

            try:
                await asyncio.wait_for(run(), timeout)
            except TimeoutError:
                log.debug("Health check for container %s taking too long", c.id)
                self._kill(session.pid)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.done.wait(), 10)
                text = output.text()
                message = f"Health check exceeded timeout ({go_duration(timeout)})"
                return -1, f"{message}: {text}" if text else message
            finally:
                stream.close()
            if session.exit_code is None:
                return -1, f"healthcheck for container {c.id} has no exit code"
            return session.exit_code, output.text()
        except asyncio.CancelledError:
            if session is not None and session.running:
                self._kill(session.pid)
            raise
        except DaemonError as e:
            log.warning("Health check for container %s error: %s", c.id, e)
            return -1, str(e)
        finally:
            if session is not None:
                execs.forget(session.id)

    @staticmethod
    def _kill(pid: int) -> None:
        if pid > 0:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
