"""The training loop: one configuration, one budget, optionally continued from a checkpoint.

Read top to bottom: hyperparameters (one record, with units), settings and records, the learning
rate schedule, the random streams, then :func:`train` itself.

Contracts the search layer relies on:

* **Budgets.** ``budget_unit="epochs"`` trains ``round(budget * steps_per_epoch)`` optimizer
  steps in total (fractional epochs allowed); ``"seconds"`` trains until the training wall time
  (evaluation excluded) reaches ``budget``, as Zela et al. did. A budget is a *total*: a call
  continued from a checkpoint trains only the difference.
* **One schedule across calls.** The learning rate is SGDR (cosine annealing with warm
  restarts, T0 = ``settings.t0``, Tmult = ``settings.t_mult``) as a function of absolute
  progress (epochs done, or training seconds), so stopping and continuing does not bend it.
  Pass the same ``t0`` to every call of one configuration; ``t0=None`` means ``budget / 15``
  of *this* call (the paper's 720 s for 10800 s: cycles of 1 + 2 + 4 + 8 end at the budget).
  ``settings.cycle_ends`` instead places the restarts at given absolute points (the search's
  rung budgets, for the ``restarts`` fidelity protocol), so that every rung ends annealed;
  see :func:`lr_factor`.
* **Exact continuation.** With an epoch budget on the CPU and a fixed seed, train(9) and
  train(3, save) followed by train(9, checkpoint) give identical weights: every random number
  comes from a stream seeded by (seed, epoch) or (seed, step), never from a generator that
  carries state between steps. The initial weights are seeded by the seed alone, the shuffle
  of epoch e by (seed, e), the augmentation and MixUp weight of step s by (seed, s), and the
  training device's default generator (the one Shake-Shake and ShakeDrop draw from) is
  reseeded from (seed, s) before each forward. Only that one generator is reseeded, not all of
  them as ``torch.manual_seed`` does: that costs ~0.1 ms per step, a few per cent of a small
  network's CPU step. On CUDA, bf16 and nondeterministic kernels make continuation close but
  not bitwise.
* **Failures are results.** A non-finite loss stops training with status ``"diverged"`` and
  ``val_error = 1.0``, the worst possible, so a searcher learns to avoid the region.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import crop_padding, cutout, mixup, mixup_weight, random_crop
from .data import DataSplits
from .facts import BUDGET_UNITS
from .models import build_model

__all__ = ["BUDGET_UNITS", "CHECKPOINT_FILE", "Hyperparameters", "Progress", "TrainRecord",
           "TrainSettings", "lr_factor", "restarts_factor", "sgdr_factor", "train"]

CHECKPOINT_FILE = "trainer_state.pt"
_CHECKPOINT_FORMAT = 1

# ---------------------------------------------------------------------------------------------
# Hyperparameters, settings and records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameters:
    """The training hyperparameters of a configuration; the defaults are the paper's baselines.

    Read from the configuration's snake_case keys by :meth:`from_config`; a missing key takes
    the default here. (The architecture keys are read by ``models.build_model``.)
    """

    learning_rate: float = 0.1        # SGD step size at the start of every SGDR cycle
    batch_size: int = 32              # images per optimizer step; clamped to the train set size
    weight_decay: float = 5e-4        # L2 coefficient (SGD weight_decay), on all parameters
    momentum: float = 0.9             # Nesterov momentum coefficient, in (0, 1)
    mixup_alpha: float = 0.2          # MixUp weight ~ Beta(alpha, alpha); 0 turns MixUp off
    cutout_length: int | None = None  # CutOut square side in pixels; None = image side // 2
    #                                   (16 for 32x32 images); 0 turns CutOut off
    shakedrop_death_rate: float = 0.0  # death probability of the deepest block (models.py)

    @classmethod
    def from_config(cls, config: Mapping, *, image_size: int, n_train: int) -> Hyperparameters:
        """Resolve ``config`` for a data set: defaults filled in, batch size and CutOut length
        rounded to integers and clamped to what the data allows."""
        d = cls()
        batch = int(round(float(config.get("batch_size", d.batch_size))))
        length = config.get("cutout_length", d.cutout_length)
        length = image_size // 2 if length is None else int(round(float(length)))
        return cls(
            learning_rate=float(config.get("learning_rate", d.learning_rate)),
            batch_size=max(1, min(batch, n_train)),
            weight_decay=float(config.get("weight_decay", d.weight_decay)),
            momentum=float(config.get("momentum", d.momentum)),
            mixup_alpha=float(config.get("mixup_alpha", d.mixup_alpha)),
            cutout_length=max(0, min(length, image_size)),
            shakedrop_death_rate=float(config.get("shakedrop_death_rate",
                                                  d.shakedrop_death_rate)),
        )


@dataclass(frozen=True)
class TrainSettings:
    """How the loop runs, as opposed to what is being searched.

    ``t0``, ``t_mult`` and ``cycle_ends`` are in budget units (epochs or seconds). With
    ``cycle_ends`` set, ``t0`` only matters past its last point (see :func:`lr_factor`).
    """

    t0: float | None = None      # first SGDR cycle; None -> budget / 15 (paper: 720 s of 10800 s)
    t_mult: float = 2.0          # each SGDR cycle is t_mult times longer than the previous one
    eval_batch_size: int = 1024  # images per forward pass when computing errors
    cycle_ends: tuple[float, ...] = ()  # absolute progress at which each cosine cycle ends
    #                                     (ascending); () -> plain SGDR from t0 and t_mult
    variant: str = "published"  # "authors": their Shake-Shake/ShakeDrop (models.py) and
    #                             zero-padded crops; "published": the papers' forms, reflect padding
    # The accelerator's input path: one host sync (divergence check, clock) every ``sync_every``
    # steps, forced on any device when set; None: what the device wants (16 on CUDA, 1 elsewhere).
    # Forcing it on the CPU lets CPU tests cover that path's logic. Channels-last tensors stay
    # CUDA-only: on the CPU, torch 2.13's backward through them crashed the process ("double free
    # or corruption", one thread), so the CUDA memory layout is the part left to a GPU.
    sync_every: int | None = None

    def __post_init__(self) -> None:
        ends = tuple(float(e) for e in self.cycle_ends)
        if any(not e > 0 for e in ends) or any(b <= a for a, b in zip(ends, ends[1:])):
            raise ValueError(f"cycle_ends must be positive and strictly ascending, got {ends}")
        object.__setattr__(self, "cycle_ends", ends)
        if self.variant not in ("published", "authors"):
            raise ValueError(f"variant must be 'published' or 'authors', got {self.variant!r}")
        if self.t0 is not None and not self.t0 > 0:
            raise ValueError(f"t0 must be positive, got {self.t0}")
        if not self.t_mult >= 1:
            raise ValueError(f"t_mult must be >= 1, got {self.t_mult}")
        if self.sync_every is not None and not (isinstance(self.sync_every, int) and self.sync_every >= 1):
            raise ValueError(f"sync_every must be a positive integer, got {self.sync_every!r}")

    def input_path(self, device: torch.device) -> tuple[bool, int]:
        """(channels_last, sync_every) on ``device``: channels-last on CUDA only; the forced
        ``sync_every``, else the device's own."""
        cuda = device.type == "cuda"
        return cuda, self.sync_every or (16 if cuda else 1)


@dataclass(frozen=True)
class Progress:
    """What the report callback receives after every epoch and at the end of a call.

    ``budget`` is the budget consumed so far in the call's unit (epochs done, or training
    seconds); ``elapsed_s`` is the training wall time so far, evaluation excluded, counted
    across continued calls.
    """

    budget: float
    epoch: float
    step: int
    train_loss: float
    val_error: float | None
    elapsed_s: float
    lr: float = float("nan")  # learning rate of the last optimizer step (nan before any step)


@dataclass(frozen=True)
class TrainRecord:
    """The result of one :func:`train` call.

    ``val_error``/``test_error`` are fractions misclassified (0..1; 1.0 when diverged);
    ``train_loss`` is the mean mini-batch loss of the last (possibly partial) epoch (inf when
    diverged); ``cost_s`` the wall seconds of this call, everything included;
    ``budget_reached`` the total budget consumed, checkpointed calls included; ``budget_start``
    where this call started (0 from scratch, the checkpoint's progress when continued), so
    ``budget_reached - budget_start`` is what this call spent; ``steps`` the total optimizer
    steps; ``status`` "ok" or "diverged".
    """

    val_error: float
    test_error: float | None
    train_loss: float
    cost_s: float
    budget_reached: float
    budget_unit: str
    steps: int
    status: str
    n_params: int
    device: str
    budget_start: float = 0.0


# ---------------------------------------------------------------------------------------------
# Learning rate schedule and random streams
# ---------------------------------------------------------------------------------------------


def sgdr_factor(t: float, t0: float, t_mult: float) -> float:
    """SGDR multiplier of the initial learning rate at absolute progress ``t`` (budget units).

    Cycle ``k`` (from 0) lasts ``t0 * t_mult**k``; within a cycle the factor falls from 1 to 0
    along half a cosine, then restarts at 1.
    """
    if t_mult == 1.0:
        t_i, t_cur = t0, math.fmod(t, t0)
    else:
        k = math.floor(math.log(1.0 + t / t0 * (t_mult - 1.0), t_mult))
        start = t0 * (t_mult ** k - 1.0) / (t_mult - 1.0)
        t_i = t0 * t_mult ** k
        t_cur = t - start
        if t_cur >= t_i:          # rounding at a restart
            t_cur, t_i = t_cur - t_i, t_i * t_mult
        t_cur = max(t_cur, 0.0)
    return 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))


def restarts_factor(t: float, cycle_ends: tuple[float, ...], t_mult: float) -> float:
    """Cosine multiplier with restarts at the given absolute points ``cycle_ends``.

    Cycle ``k`` runs from ``cycle_ends[k-1]`` (0 for the first) to ``cycle_ends[k]`` and falls
    from 1 to 0 along half a cosine, so the factor reaches 0 exactly at every point of
    ``cycle_ends`` and restarts at 1 right after it. Past the last point the schedule goes on as
    SGDR whose first cycle is ``t_mult`` times the last one, so continuing beyond the largest
    budget (a retrain, a longer run) still has a schedule.
    """
    start = 0.0
    for end in cycle_ends:
        if t < end:
            return 0.5 * (1.0 + math.cos(math.pi * (t - start) / (end - start)))
        start = end
    last = cycle_ends[-1] - (cycle_ends[-2] if len(cycle_ends) > 1 else 0.0)
    return sgdr_factor(t - cycle_ends[-1], last * t_mult, t_mult)


def lr_factor(t: float, settings: TrainSettings, t0: float) -> float:
    """The learning rate multiplier at absolute progress ``t``: :func:`restarts_factor` when
    ``settings.cycle_ends`` is set, else :func:`sgdr_factor` with ``t0``."""
    if settings.cycle_ends:
        return restarts_factor(t, settings.cycle_ends, settings.t_mult)
    return sgdr_factor(t, t0, settings.t_mult)


# Independent random streams; each is indexed by an epoch or a step, never carried along.
_SHUFFLE, _AUGMENT, _MODEL, _INIT, _MIXUP = 0, 1, 2, 3, 4


def _stream_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for item ``index`` of ``stream`` (SeedSequence: no collisions in practice)."""
    state = np.random.SeedSequence([seed, stream, index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1])) & (2 ** 63 - 1)


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator ``torch.rand(..., device=device)`` draws from when given none."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None
                                             else torch.cuda.current_device()]
    return torch.default_generator


def _epoch_permutation(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(_stream_seed(seed, _SHUFFLE, epoch))
    return torch.randperm(n, generator=g).to(device)


# ---------------------------------------------------------------------------------------------
# Evaluation and checkpoints
# ---------------------------------------------------------------------------------------------


def _autocast(device: torch.device):
    """bf16 autocast on CUDA; plain fp32 elsewhere (CPU bf16 is slow and changes results)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_model_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def _error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
           device: torch.device, channels_last: bool = False) -> float:
    """Fraction of ``x`` misclassified, with one host sync at the end."""
    model.eval()
    n = int(y.shape[0])
    if n == 0:
        return float("nan")
    wrong = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, n, batch_size):
        with _autocast(device):
            out = model(_to_model_layout(x[i:i + batch_size], channels_last))
        wrong += (out.argmax(dim=1) != y[i:i + batch_size]).sum()
    return wrong.item() / n


def _save(directory: str | Path, state: dict) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, directory / CHECKPOINT_FILE)  # a crash never leaves half a checkpoint


def _load(directory: str | Path, device: torch.device) -> dict:
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {CHECKPOINT_FILE} in {directory}; pass a directory that "
                                f"an earlier train(save_checkpoint=...) wrote")
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} has checkpoint format {state.get('format')}, "
                         f"expected {_CHECKPOINT_FORMAT}")
    return state


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train(config: Mapping, budget: float, data: DataSplits, *, budget_unit: str = "epochs",
          checkpoint: str | Path | None = None, save_checkpoint: str | Path | None = None,
          report: Callable[[Progress], None] | None = None,
          settings: TrainSettings = TrainSettings(), seed: int = 0, device: str | None = None,
          evaluate_test: bool = False) -> TrainRecord:
    """Train ``config`` on ``data`` until the total ``budget`` is reached; see the module doc.

    ``checkpoint`` continues from a directory an earlier call wrote with ``save_checkpoint``
    (same config, data, seed and unit); ``save_checkpoint`` writes the final state to a
    directory (created if needed). ``report`` is called with a :class:`Progress` after each
    epoch (which costs a validation pass per epoch) and once at the end. ``device=None`` picks
    "cuda" when available, else "cpu".
    """
    wall_start = time.perf_counter()
    if budget_unit not in BUDGET_UNITS:
        raise ValueError(f"budget_unit must be one of {BUDGET_UNITS}, got {budget_unit!r}")
    if not budget >= 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n_train = len(data.train)
    hp = Hyperparameters.from_config(config, image_size=data.image_size, n_train=n_train)
    t0 = settings.t0 if settings.t0 is not None else budget / 15.0

    # --- network and optimizer ---------------------------------------------------------------
    torch.manual_seed(_stream_seed(seed, _INIT, 0))  # He init draws from the global generator
    model = build_model(config, data.in_channels, data.num_classes, settings.variant).to(dev)
    channels_last, sync_every = settings.input_path(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                nesterov=hp.momentum > 0, weight_decay=hp.weight_decay)
    steps_per_epoch = math.ceil(n_train / hp.batch_size)

    step, elapsed, status, last_epoch_loss = 0, 0.0, "ok", float("nan")
    if checkpoint is not None:
        state = _load(checkpoint, dev)
        if state["budget_unit"] != budget_unit:
            raise ValueError(f"checkpoint {checkpoint} counts {state['budget_unit']}, this call "
                             f"counts {budget_unit}")
        if state["steps_per_epoch"] != steps_per_epoch:
            raise ValueError(f"checkpoint {checkpoint} has {state['steps_per_epoch']} steps per "
                             f"epoch, this call {steps_per_epoch}: batch size or data differ")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, status = state["step"], state["elapsed_s"], state["status"]
        last_epoch_loss = state["train_loss"]
    budget_start = step / steps_per_epoch if budget_unit == "epochs" else elapsed

    # --- data, once on the device ------------------------------------------------------------
    train_x, train_y = data.train.x.to(dev), data.train.y.to(dev)
    val_x, val_y = data.val.x.to(dev), data.val.y.to(dev)
    padding = crop_padding(data.image_size)
    crop_mode = "zeros" if settings.variant == "authors" else "reflect"
    augment_g = torch.Generator(device=dev)
    model_g = _default_generator(dev)

    def progress_now() -> float:
        return step / steps_per_epoch if budget_unit == "epochs" else elapsed

    def done() -> bool:
        if budget_unit == "epochs":
            return step >= round(budget * steps_per_epoch)
        return elapsed >= budget

    def validate() -> float:
        error = _error(model, val_x, val_y, settings.eval_batch_size, dev, channels_last)
        model.train()  # once here rather than every step: it walks every module
        return error

    # On CUDA, reading the loss or the clock back waits for the GPU; do it every few steps
    # (sync_every, from settings.input_path).
    loss_sum = torch.zeros((), device=dev)
    loss_count = 0
    reported_step, last_val = -1, None
    perm, perm_epoch = None, -1
    lr = float("nan")
    model.train()
    mark = time.perf_counter()
    while status == "ok" and not done():
        epoch, i = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = _epoch_permutation(seed, epoch, n_train, dev), epoch
        idx = perm[i * hp.batch_size:(i + 1) * hp.batch_size]
        x, y = train_x[idx], train_y[idx]

        augment_g.manual_seed(_stream_seed(seed, _AUGMENT, step))
        x = random_crop(x, padding, augment_g, mode=crop_mode, flip=data.flip)
        x = cutout(x, hp.cutout_length, augment_g)
        lam = mixup_weight(hp.mixup_alpha, _stream_seed(seed, _MIXUP, step))
        x, y_a, y_b = mixup(x, y, lam, augment_g)

        t = progress_now() if budget_unit == "epochs" else elapsed + time.perf_counter() - mark
        lr = hp.learning_rate * lr_factor(t, settings, t0)
        for group in optimizer.param_groups:
            group["lr"] = lr

        model_g.manual_seed(_stream_seed(seed, _MODEL, step))
        with _autocast(dev):
            out = model(_to_model_layout(x, channels_last))
            if lam < 1.0:  # one log-softmax for both targets of the mix
                log_p = F.log_softmax(out.float(), dim=1)
                loss = lam * F.nll_loss(log_p, y_a) + (1 - lam) * F.nll_loss(log_p, y_b)
            else:
                loss = F.cross_entropy(out, y_a)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        loss_sum += loss.detach().float()
        loss_count += 1

        epoch_end = step % steps_per_epoch == 0
        if epoch_end or step % sync_every == 0:
            if not torch.isfinite(loss_sum).item():
                status = "diverged"
            now = time.perf_counter()
            elapsed, mark = elapsed + now - mark, now
        if epoch_end and status == "ok":
            last_epoch_loss = loss_sum.item() / loss_count
            loss_sum.zero_()
            loss_count = 0
            if report is not None:
                last_val, reported_step = validate(), step
                report(Progress(budget=progress_now(), epoch=step / steps_per_epoch, step=step,
                                train_loss=last_epoch_loss, val_error=last_val,
                                elapsed_s=elapsed, lr=lr))
                mark = time.perf_counter()  # evaluation and reporting are not training time

    # --- the end of the call -----------------------------------------------------------------
    if status == "ok" and loss_count > 0:
        partial = loss_sum.item() / loss_count
        if math.isfinite(partial):
            last_epoch_loss = partial
        else:
            status = "diverged"
    elapsed += time.perf_counter() - mark
    if status == "ok":
        val_error = last_val if reported_step == step and last_val is not None else validate()
        test_error = (_error(model, data.test.x.to(dev), data.test.y.to(dev),
                             settings.eval_batch_size, dev, channels_last) if evaluate_test else None)
        train_loss = last_epoch_loss
    else:
        val_error, test_error, train_loss = 1.0, (1.0 if evaluate_test else None), float("inf")

    if report is not None and reported_step != step:
        report(Progress(budget=progress_now(), epoch=step / steps_per_epoch, step=step,
                        train_loss=train_loss, val_error=val_error, elapsed_s=elapsed, lr=lr))
    if save_checkpoint is not None:
        _save(save_checkpoint, {
            "format": _CHECKPOINT_FORMAT, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed,
            "status": status, "train_loss": train_loss, "budget_unit": budget_unit,
            "steps_per_epoch": steps_per_epoch, "seed": seed,
        })
    return TrainRecord(val_error=float(val_error),
                       test_error=None if test_error is None else float(test_error),
                       train_loss=float(train_loss), cost_s=time.perf_counter() - wall_start,
                       budget_reached=float(progress_now()), budget_unit=budget_unit,
                       steps=int(step), status=status, n_params=int(n_params), device=str(dev),
                       budget_start=float(budget_start))
