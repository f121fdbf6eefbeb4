"""The ``hpbandster`` preset: BOHB by its reference implementation, with the same contract as Ray Tune's.

``run_hpbandster(settings, space, tracker, run_name)`` takes what ``ray_tune.run_tune`` takes and
returns what it returns (``{"trials", "errors"}``). Everything runs in this process, on loopback:
a Pyro4 nameserver on 127.0.0.1 (a port the OS picks), hpbandster's ``BOHB`` master, and
``max(1, max_concurrent)`` workers in background threads. Master and workers still talk through
Pyro4, exactly as on a cluster, so the rules of that boundary apply here too.

The roles (see hpbandster's core/master.py, core/worker.py, config_generators/bohb.py):

- the proposer: hpbandster's KDE config generator, unchanged, seeded from ``settings.seed``;
- the bracket logic: hpbandster's ``SuccessiveHalving``, fed by :class:`PlannedBOHB` with our
  budgets and a bracket plan sized by ``num_samples`` (see :func:`plan_brackets`);
- the worker: :class:`TrainerWorker`, which calls the trainer through ``trainer_api`` and
  continues a promoted configuration from the state it saved at the lower budget;
- tracking: :class:`TrackingResultLogger`, hpbandster's ``result_logger`` hook, which the master
  calls for every sampled configuration and every finished job. All MLflow writes happen there,
  on the master side, never in a worker.

Why budgets are ours and not hpbandster's: hpbandster places them at ``max_budget * eta**-k`` with
``k < -int(log(min/max) / log(eta)) + 1``; that truncation loses the smallest budget to float
error (1..100 with eta 10 gives only 10 and 100) and gives 1.11, 3.33, 10 for 1..10 with eta 3.
:func:`budgets.rung_budgets` gives 1, 3, 9 / 400, 1200, 3600, 10800 / 1, 10, 100 / 1, 3, 10, the
same rungs as the Ray Tune preset, so both presets evaluate at the same budgets.

Why every value is converted to plain Python at the boundary: Pyro4 serializes with serpent,
which refuses numpy integers ("don't know how to serialize class numpy.int64") and writes numpy
floats as ``np.float64(1.0)``, which the receiving side cannot parse. hpbandster's own
``BOHB.budgets`` is a numpy array, so with numpy 2 the very first job never reaches a worker,
and because ``start_computation`` is a oneway call, nothing is raised: the search just hangs.
:class:`PlannedBOHB` therefore hands out plain floats and plain configurations, and
:class:`TrainerWorker` returns only plain floats, ints, strings and bools.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jointsearch.spaces import config_dict, to_python

from .budgets import bracket_of, bracket_size, plan_brackets, stage_sizes  # noqa: F401 - re-exported
from .settings import SearchSettings
from .tracking import SearchTracker
from .infeasible import infeasible_reason, is_infeasible, record_infeasible
from .trainer_api import call_trainer, resolve, failure_kind

log = logging.getLogger("jointsearch.search.hpbandster")

HOST = "127.0.0.1"
STATE_DIR = "state"
DONE_FILE = "done"  # written into a rung's folder once its state is complete
SHUTDOWN_TIMEOUT_S = 30.0


# --- budgets and brackets: pure arithmetic (bracket sizes live in budgets.py) -------------------


def rung_index(budget: float, rungs: list[float]) -> int:
    """The rung of a budget: its index in ``rungs``, snapped to the nearest one (float rounding)."""
    return min(range(len(rungs)), key=lambda k: abs(rungs[k] - budget))


def trial_id_of(config_id: tuple, segment: int = 0) -> str:
    """hpbandster's config id ``(iteration, stage sampled at, index)`` as a trial id: ``hb-0-0-3``.

    A resumed search restarts hpbandster's numbering, so its part gets a segment prefix
    (``hb2-0-0-3`` for the second resume) and never reuses an earlier trial's MLflow run.
    """
    return f"hb{segment or ''}-" + "-".join(str(int(part)) for part in config_id)


def plain_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Only values serpent carries faithfully: Python scalars; non-finite floats dropped."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        value = to_python(value)
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[str(key)] = value if not isinstance(value, str) else str(value)
    return out


def plain_config(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration with Python values only (numpy strings too: they are ``str`` subclasses)."""
    return {str(k): (str(v) if isinstance(v, str) else v) for k, v in config_dict(config).items()}


class SearchAborted(RuntimeError):
    """Raised by workers once tracking failed: the remaining jobs end at once instead of training."""


# --- the master -----------------------------------------------------------------------------


def _bohb_class():
    from hpbandster.optimizers import BOHB
    from hpbandster.optimizers.iterations import SuccessiveHalving

    class PlannedBOHB(BOHB):
        """hpbandster's BOHB with our rung budgets, a bracket plan, and plain values for Pyro.

        Only ``get_next_iteration`` changes (hpbandster's own extension point): the same
        ``SuccessiveHalving`` with the same stage sizes, but the budgets are Python floats from
        ``rung_budgets`` and every sampled configuration is converted to Python values before
        the master stores it, so what is queued, sent to the worker and compared when the
        result comes back is one and the same plain dict.
        """

        def __init__(self, *, rungs: list[float], plan: list[int], **kwargs):
            super().__init__(**kwargs)
            self.rungs = [float(b) for b in rungs]
            self.plan = list(plan)
            self.max_SH_iter = len(self.rungs)
            self.budgets = np.array(self.rungs)  # only read back by hpbandster's Result
            self.config.update(budgets=self.rungs, max_SH_iter=self.max_SH_iter)

        def _plain_sample(self, budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
            config, info = self.config_generator.get_config(budget)
            return plain_config(config), plain_metrics(info)

        def get_next_iteration(self, iteration, iteration_kwargs={}):
            s = bracket_of(iteration, self.max_SH_iter)
            n0 = self.plan[iteration] if iteration < len(self.plan) else bracket_size(s, self.max_SH_iter, self.eta)
            return SuccessiveHalving(HPB_iter=iteration, num_configs=stage_sizes(n0, s, self.eta),
                                     budgets=self.rungs[-s - 1:], config_sampler=self._plain_sample,
                                     **iteration_kwargs)

    return PlannedBOHB


# --- the worker -----------------------------------------------------------------------------


def _worker_class():
    from hpbandster.core.worker import Worker

    class TrainerWorker(Worker):
        """Evaluates one configuration at one budget by calling the trainer.

        Continuation: each configuration has a folder ``<work>/<trial id>/``; the call at rung
        ``k`` writes its state to ``rung<k>/state`` and marks it complete with ``rung<k>/done``.
        The next call for the same configuration (hpbandster promotes it with the same
        ``config_id`` and a larger budget) passes the latest complete state as
        ``checkpoint_dir``, then deletes it once the new one is complete.

        Returns ``{"loss": float, "info": metrics}`` with Python values only (see the module
        docstring); a trainer's exception is left to hpbandster, which sends its traceback back
        as the job's ``exception``.
        """

        def __init__(self, *, trainer: Callable[..., Any], context: dict[str, Any], rungs: list[float],
                     work_dir: Path, abort: threading.Event, **kwargs):
            super().__init__(**kwargs)
            self.trainer = trainer
            self.context = context
            self.rungs = rungs
            self.work_dir = work_dir
            self.abort = abort

        def compute(self, config_id, config, budget, working_directory):
            if self.abort.is_set():
                raise SearchAborted("search aborted: tracking failed")
            budget = float(budget)
            rung = rung_index(budget, self.rungs)
            trial_dir = self.work_dir / trial_id_of(config_id)
            previous = _latest_state(trial_dir, rung)
            out = trial_dir / f"rung{rung}"
            shutil.rmtree(out, ignore_errors=True)  # a retried job starts clean
            (out / STATE_DIR).mkdir(parents=True)
            started = time.time()
            scratch = self.context.get("fidelity") == "scratch"  # issue 13: every rung from scratch
            metrics = call_trainer(self.trainer, dict(config), budget,
                                   checkpoint_dir=str(previous) if previous and not scratch else None,
                                   save_dir=str(out / STATE_DIR), **self.context)
            metrics.setdefault("cost_s", time.time() - started)
            if previous is None or scratch:
                metrics.setdefault("budget_spent", budget)
            (out / DONE_FILE).write_text(f"{budget!r}\n")
            if previous is not None:
                shutil.rmtree(previous.parent, ignore_errors=True)
            loss = metrics["val_error"]
            return {"loss": float(loss) if math.isfinite(loss) else float("inf"), "info": plain_metrics(metrics)}

    return TrainerWorker


def _latest_state(trial_dir: Path, below_rung: int) -> Path | None:
    """The state folder of the highest complete rung under ``below_rung``, if any."""
    for rung in range(below_rung - 1, -1, -1):
        folder = trial_dir / f"rung{rung}"
        if (folder / DONE_FILE).is_file():
            return folder / STATE_DIR
    return None


# --- tracking -------------------------------------------------------------------------------


class TrackingResultLogger:
    """hpbandster's ``result_logger``: mirrors configurations and jobs into MLflow child runs.

    The master calls ``new_config`` when it samples a configuration (before its first job) and
    ``__call__`` with every finished job, both from its own threads; a lock keeps the tracker's
    calls one at a time whatever hpbandster does. A trial ends as soon as we know its fate:
    ``failed`` when a job raised (kind ``exception`` or ``oom``, the exception's last line as
    the reason) or its error was not finite (kind ``diverged``), ``completed`` when it was
    evaluated at the max budget, ``stopped`` (not promoted) when its bracket has finished, or
    at the end of the search.

    A tracking error must not kill hpbandster's callback thread (the master would wait forever
    for that job): it is logged, the first one is kept in ``error`` and ``abort`` is set so the
    workers end the remaining jobs at once; ``run_hpbandster`` raises it after shutdown.
    """

    def __init__(self, tracker: SearchTracker, rungs: list[float], abort: threading.Event, segment: int = 0):
        self.tracker = tracker
        self.segment = segment
        self.rungs = [float(b) for b in rungs]
        self.abort = abort
        self.lock = threading.Lock()
        self.iterations: Callable[[], list] = lambda: []  # set to the master's once it exists
        self.reached: dict[str, float] = {}  # trial id -> highest budget evaluated
        self.open: dict[str, int] = {}  # trial id -> iteration, for trials not ended yet
        self.n_configs = 0
        self.n_failed_jobs = 0
        self.error: BaseException | None = None

    def new_config(self, config_id, config, config_info) -> None:
        with self.lock:
            self.n_configs += 1
            trial_id = trial_id_of(config_id, self.segment)
            iteration = int(config_id[0])
            n_rungs = len(self.rungs)
            tags = {"bracket": str(bracket_of(iteration, n_rungs)), "band": str(iteration // n_rungs)}
            if isinstance(config_info, dict) and "model_based_pick" in config_info:
                tags["model_based_pick"] = str(config_info["model_based_pick"]).lower()
                tags["proposal"] = "model" if config_info["model_based_pick"] else "random"  # as the Ray presets
            self._safely(self.tracker.trial_started, trial_id, dict(config), tags)
            self.open[trial_id] = iteration
            self._close_finished_brackets()

    def __call__(self, job) -> None:
        with self.lock:
            trial_id = trial_id_of(job.id, self.segment)
            budget = float(job.kwargs["budget"])
            if job.exception is not None or job.result is None:
                self.n_failed_jobs += 1
                self.open.pop(trial_id, None)
                reason = _last_line(job.exception)
                self._safely(self.tracker.trial_ended, trial_id, "failed", reason, failure_kind(reason))
                return
            metrics = dict((job.result or {}).get("info") or {})
            status = str(metrics.get("status", "ok"))
            if is_infeasible(metrics):  # never trained: no evaluation, no budget (issue 13)
                self._safely(record_infeasible, self.tracker, trial_id, metrics, {})
            else:
                self.reached[trial_id] = max(budget, self.reached.get(trial_id, 0.0))
                self._safely(self.tracker.evaluation, trial_id, budget, metrics, rung_index(budget, self.rungs))
            if status != "ok":  # hpbandster will not promote it (its loss is inf); as the Ray preset records it
                self.open.pop(trial_id, None)
                reason = (infeasible_reason(metrics) if is_infeasible(metrics)
                          else f"{status}: the validation error was not finite")
                self._safely(self.tracker.trial_ended, trial_id, "failed", reason, status)
            elif budget >= self.rungs[-1] - 1e-9:
                self.open.pop(trial_id, None)
                self._safely(self.tracker.trial_ended, trial_id, "completed")
            self._close_finished_brackets()

    def close_all(self) -> None:
        """End every trial still open (the search is over): stopped below the max budget."""
        with self.lock:
            for trial_id in list(self.open):
                self._end_unfinished(trial_id)

    def _close_finished_brackets(self) -> None:
        iterations = self.iterations()
        for trial_id, iteration in list(self.open.items()):
            if iteration < len(iterations) and iterations[iteration].is_finished:
                self._end_unfinished(trial_id)

    def _end_unfinished(self, trial_id: str) -> None:
        self.open.pop(trial_id, None)
        done = self.reached.get(trial_id, 0.0) >= self.rungs[-1] - 1e-9
        self._safely(self.tracker.trial_ended, trial_id, "completed" if done else "stopped")

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.error is not None:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            log.exception("tracking failed; aborting the search")
            self.error = exc
            self.abort.set()


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "job failed without an error message"


# --- the search -----------------------------------------------------------------------------


def _work_root(settings: SearchSettings) -> str | None:
    """Where the per-configuration states live: ``storage_path`` when it is local, else the temp dir."""
    if settings.storage_path and "://" not in settings.storage_path:
        Path(settings.storage_path).mkdir(parents=True, exist_ok=True)
        return settings.storage_path
    return None


class _Observation:
    """An earlier evaluation in the shape hpbandster's config generators read (a finished Job)."""

    def __init__(self, loss: float, budget: float, config: dict):
        self.result = {"loss": loss}
        self.kwargs = {"budget": budget, "config": config}
        self.exception = None


def run_hpbandster(settings: SearchSettings, space, tracker: SearchTracker, run_name: str,
                   observations=()) -> dict[str, int]:
    """Run the search with hpbandster's BOHB; every result goes to ``tracker`` as it arrives.

    ``observations`` (a resumed search's earlier evaluations) are fed to BOHB's KDE model first.

    Returns ``{"trials": configurations sampled, "errors": jobs that raised}``. The nameserver,
    the master and the workers are shut down whatever happens (their threads joined, their
    ports closed), and the folder of continuation states is removed: it only serves the
    search itself. Seeds numpy's global generator (hpbandster's KDE sampling draws from it)
    and a copy of the space with ``settings.seed``.
    """
    from hpbandster.core.nameserver import NameServer

    trainer = resolve(settings.trainer)
    rungs = list(settings.rungs)
    plan = plan_brackets(settings.num_samples, len(rungs), settings.eta)
    n_workers = max(1, settings.max_concurrent or 1)
    space = copy.deepcopy(space)
    if settings.seed is not None:
        np.random.seed(settings.seed)
        space.seed(settings.seed)
    run_id = f"jointsearch-{uuid.uuid4().hex[:12]}"
    abort = threading.Event()
    segment = len({tid.split("-")[0] for tid in tracker.trial_ids() if tid.startswith("hb")}) if observations else 0
    result_logger = TrackingResultLogger(tracker, rungs, abort, segment)
    work_dir = Path(tempfile.mkdtemp(prefix=f"hpbandster-{run_name}-", dir=_work_root(settings)))
    nameserver = NameServer(run_id=run_id, host=HOST, port=0)
    workers: list = []
    master = None
    try:
        _, port = nameserver.start()
        worker_class = _worker_class()
        for i in range(n_workers):
            worker = worker_class(trainer=trainer, context=settings.trainer_context(), rungs=rungs,
                                  work_dir=work_dir, abort=abort, run_id=run_id, nameserver=HOST,
                                  nameserver_port=port, host=HOST, id=i, logger=log)
            worker.run(background=True)
            workers.append(worker)
        master = _bohb_class()(
            rungs=rungs, plan=plan, configspace=space, run_id=run_id, nameserver=HOST, nameserver_port=port,
            host=HOST, min_budget=rungs[0], max_budget=rungs[-1], eta=settings.eta,
            working_directory=str(work_dir), result_logger=result_logger, logger=log,
        )
        for r in sorted(observations, key=lambda r: r.budget):
            if r.status == "ok" and np.isfinite(r.val_error):
                budget = rungs[rung_index(r.budget, rungs)]
                master.config_generator.new_result(_Observation(float(r.val_error), budget, plain_config(r.config)))
        result_logger.iterations = lambda: master.iterations
        log.info("hpbandster: %d configurations in %d iterations %s, budgets %s, %d workers",
                 settings.num_samples, len(plan), plan, rungs, n_workers)
        master.run(n_iterations=len(plan), min_n_workers=n_workers, iteration_kwargs={})  # not the shared default
        result_logger.close_all()
    finally:
        _shutdown(master, workers, nameserver)
        shutil.rmtree(work_dir, ignore_errors=True)
    if result_logger.error is not None:
        raise RuntimeError(f"tracking the search failed: {result_logger.error}") from result_logger.error
    return {"trials": result_logger.n_configs, "errors": result_logger.n_failed_jobs}


def _quiet_late_pyro_callbacks() -> None:
    """A worker that finishes its job after the master stopped (a search interrupted mid-job)
    reports back from a Pyro one-way thread to a dispatcher that is gone. That CommunicationError
    is expected at shutdown, not a failure: log it instead of printing a thread traceback."""
    import Pyro4.errors

    previous = threading.excepthook
    if getattr(previous, "jointsearch_quiet", False):
        return

    def hook(args) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, Pyro4.errors.CommunicationError):
            log.debug("a worker reported after the master stopped: %s", args.exc_value)
            return
        previous(args)

    hook.jointsearch_quiet = True
    threading.excepthook = hook


def _shutdown(master, workers: list, nameserver) -> None:
    """Master (and through it the workers), then any worker it never discovered, then the nameserver.

    Order matters: a stopping worker and the dispatcher unregister from the nameserver on
    their way out, so it must outlive them.
    """
    _quiet_late_pyro_callbacks()
    if master is not None:
        try:
            master.shutdown(shutdown_workers=True)
        except Exception:  # noqa: BLE001 - keep shutting the rest down
            log.exception("hpbandster master did not shut down cleanly")
        # The dispatcher keeps a proxy per worker, connected: a worker daemon's thread would
        # wait on that connection forever. Closing it ends the thread.
        for remote in list(getattr(master.dispatcher, "worker_pool", {}).values()):
            remote.proxy._pyroRelease()
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
    for worker in workers:
        thread = worker.thread
        if thread is None:
            continue
        thread.join(timeout=min(2.0, max(0.0, deadline - time.monotonic())))
        while thread.is_alive() and time.monotonic() < deadline:
            daemon = getattr(worker, "pyro_daemon", None)  # absent until the worker has registered
            if daemon is not None:
                daemon.shutdown()  # a worker the master never discovered: stop it directly
            thread.join(timeout=0.2)
        if thread.is_alive():
            log.warning("hpbandster worker %s did not stop", worker.worker_id)
    nameserver.shutdown()
