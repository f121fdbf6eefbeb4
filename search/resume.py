"""Which search may be continued, and whether the one that left it is still alive.

A search's parent run carries a heartbeat (a time stamp refreshed every
``heartbeat_interval_s``) and the host, PID and process start time of the driver that runs it.
A later command uses them to tell three cases apart:

- same host, that process gone (or the PID reused by another process): the driver is dead,
  so the search is continued at once, without waiting for the heartbeat to go stale;
- same host, that process alive: a live search, never taken over (not even with ``--force``);
- another host: nothing can be checked locally, so the heartbeat decides: fresh means alive,
  3 silent intervals mean dead; ``--force`` takes over a search the user knows is dead.

A search that was interrupted (Ctrl-C, SIGTERM) ends KILLED with ``jointsearch.interrupted``
set, and is continued the same way as a crashed one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from typing import Mapping

from .errors import UsageError
from .results import SearchResults, artifact_text, read_search
from .settings import SearchSettings

HEARTBEAT_TAG = "jointsearch.heartbeat"
RESUMES_TAG = "jointsearch.resumes"
HOST_TAG = "jointsearch.driver_host"
PID_TAG = "jointsearch.driver_pid"
PID_START_TAG = "jointsearch.driver_started"  # the process's start time, to detect a reused PID
INTERRUPTED_TAG = "jointsearch.interrupted"


def heartbeat_interval_s() -> float:
    """How often a running search says it is alive (a dead one is 3 silent intervals old)."""
    return float(os.environ.get("JOINTSEARCH_HEARTBEAT_S", "30"))


def _process_start(pid: int) -> str:
    """The start time of a process in clock ticks since boot (Linux), or "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def driver_tags() -> dict[str, str]:
    """Who runs this search: written on the parent run when it is created (or taken over),
    together with a first heartbeat, so that no other command sees it without them."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), PID_START_TAG: _process_start(os.getpid()),
            HEARTBEAT_TAG: f"{time.time():.0f}"}


def _pid_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    current = _process_start(pid)
    return not (started and current and current != started)


@dataclasses.dataclass(frozen=True)
class DriverState:
    """What the parent run says about the driver of a search that is not FINISHED."""

    alive: bool
    reason: str  # one sentence, for the error message


def driver_state(results: SearchResults, now: float | None = None) -> DriverState:
    """Whether the driver of an unfinished search is still running (see the module docstring)."""
    now = time.time() if now is None else now
    tags = results.parent_tags
    if results.status != "RUNNING":
        return DriverState(False, f"it ended {results.status}")
    interval = heartbeat_interval_s()
    stamp = tags.get(HEARTBEAT_TAG)
    try:
        age = now - float(stamp) if stamp else None
    except ValueError:
        age = None
    host, pid = tags.get(HOST_TAG), tags.get(PID_TAG)
    if host and pid and host == socket.gethostname() and pid.isdigit():
        if _pid_alive(int(pid), tags.get(PID_START_TAG, "")):
            return DriverState(True, f"its driver, process {pid} on this host, is still running; stop it first")
        return DriverState(False, f"its driver, process {pid} on this host, is gone")
    if age is None:
        return DriverState(False, "it has no heartbeat")
    if age < 3 * interval:
        stale_at = time.strftime("%H:%M:%S", time.localtime(float(stamp) + 3 * interval))
        where = f" on host {host} (process {pid})" if host else ""
        return DriverState(True, f"it is still running{where}: heartbeat {age:.0f} s ago; if its driver is dead, "
                                 f"the heartbeat goes stale at {stale_at} (in {3 * interval - age:.0f} s), "
                                 f"or pass --force to take it over now")
    return DriverState(False, f"its heartbeat is {age:.0f} s old")


def unfinished_search(settings: SearchSettings) -> SearchResults | None:
    """The newest search of the experiment if it did not finish (crashed or interrupted), else None."""
    from .results import check_store_exists

    from .store_lock import open_store

    try:
        check_store_exists(settings.tracking_uri)
        open_store(settings.tracking_uri)  # another search may be creating its tables right now
        results = read_search(settings.tracking_uri, settings.experiment)
    except UsageError:
        return None
    return None if results.status == "FINISHED" else results


def choose_search_to_continue(settings: SearchSettings, *, resume: bool | None, force: bool = False
                              ) -> SearchResults | None:
    """The search ``run_search`` continues, or None for a new one; ``UsageError`` when the user
    asked to resume and nothing may be resumed.

    ``resume=None`` (the same command again): an unfinished search with identical settings whose
    driver is dead is continued; anything else starts a new search.
    """
    if resume is False:
        return None
    previous = unfinished_search(settings)
    if previous is not None and resume is None and previous.params != settings.as_params():
        previous = None  # a different search in the same experiment: start a new one
    if resume and previous is None:
        raise UsageError(f"experiment {settings.experiment!r} has no unfinished search to resume")
    if previous is None:
        return None
    state = driver_state(previous)
    if not state.alive:
        return previous
    same_host_alive = previous.parent_tags.get(HOST_TAG) == socket.gethostname()
    if force and not same_host_alive:
        return previous
    if resume or force:
        raise UsageError(f"search {previous.search_run_id} cannot be resumed: {state.reason}")
    return None  # the same command while the first still runs: a second, separate search


def recorded_settings(uri: str, experiment: str, search_run_id: str | None = None) -> SearchSettings:
    """The settings a search was launched with (its settings.json), to resume it as it was."""
    from .results import check_store_exists
    from .tracking import client_for

    check_store_exists(uri)
    results = read_search(uri, experiment, search_run_id)
    text = artifact_text(client_for(uri), results.search_run_id, "settings.json")
    if not text:
        raise UsageError(f"search {results.search_run_id} has no settings.json; it cannot be resumed")
    values = json.loads(text)
    names = {f.name for f in dataclasses.fields(SearchSettings)}
    return SearchSettings(**{k: v for k, v in values.items() if k in names})


class Heartbeat(threading.Thread):
    """Stamps the parent run with the time, so a later command can tell a crashed search
    (stale stamp, status still RUNNING) from one that is still running elsewhere."""

    def __init__(self, uri: str, run_id: str):
        super().__init__(daemon=True, name="jointsearch-heartbeat")
        self.uri, self.run_id, self.stop = uri, run_id, threading.Event()

    def run(self) -> None:
        from .tracking import client_for

        client = client_for(self.uri)
        while not self.stop.wait(heartbeat_interval_s()):
            try:
                client.set_tag(self.run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
            except Exception:  # noqa: BLE001 - an unreachable server is handled by the tracker
                pass


def tag_batch(tags: Mapping[str, str]):
    from mlflow.entities import RunTag

    return [RunTag(k, str(v)) for k, v in tags.items()]


def close_left_open(tracker, previous: SearchResults) -> None:
    """Close the trial runs of a search whose driver died, on the tracker that continues it.

    - A trial with no final status was running when the driver died: ``interrupted`` (KILLED).
    - A trial whose final status was recorded but whose run is still RUNNING: the driver died
      between the two writes (seen once on CI, a SIGKILL-ed `asha` search). Its run is closed as
      that status says; its status itself is not rewritten."""
    for trial_id, tags in previous.trial_tags.items():
        final_status = tags.get("final_status")
        if not final_status:
            tracker.trial_ended(trial_id, "interrupted")
        elif previous.trial_status.get(trial_id) == "RUNNING":
            tracker.close_run(trial_id, final_status)
