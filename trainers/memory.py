"""How much accelerator memory one configuration needs to train, before it is started.

Why: a joint space spans networks from a few thousand to over a billion parameters. Asking
Ray for a whole GPU per configuration leaves most of a GPU idle for the small ones; asking for
a fixed fraction lets the large ones run out of memory. ``--gpus-per-trial auto`` asks for the
fraction this module predicts, and never starts a configuration that cannot fit one device.

Three steps, each a plain function returning plain data (the search layer calls them by import
path and never imports torch itself):

1. :func:`estimate` — the *raw* estimate of one training step of the multi-branch ResNet
   (``trainers.models``), in closed form from the architecture: the tensors autograd keeps for
   the backward pass (the activations; the tests check the formula against autograd's own
   saved tensors on the ``meta`` device, :func:`saved_tensor_bytes_meta`), parameters, their
   gradients and SGD's momentum buffer (3 x the parameters), and the input batch. A fraction
   of a millisecond per configuration, so the driver can plan thousands.
2. :func:`calibrate` — once per device, a short probe trains two small networks for two steps
   and measures their real peak (``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the
   peak resident set of a fresh subprocess, ``VmHWM``). The line through the two points,
   ``measured = scale * raw + overhead``, absorbs what the raw count leaves out (allocator
   rounding, cuDNN/bf16 workspaces, the CUDA context, the interpreter on the CPU).
3. :func:`plan_gpu` — the calibrated need of one configuration as a fraction of the device,
   rounded up to a grid (default 1/8 GPU), or *infeasible* with the reason when it exceeds one
   device.

Contract: the estimate is for the built-in trainer's network at the data set's image size and
the configuration's ``batch_size``; a user trainer whose network differs should not use
``auto``. The CUDA path (bf16 autocast, channels_last) is calibrated by the same probe but has
not run on a GPU in this project (no GPU was lent); the CPU path is tested against measured
memory in ``tests/trainers/test_memory.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

from .models import arch_spec, build_model

__all__ = ["DATASET_SHAPES", "Calibration", "GpuPlan", "MemoryEstimate", "calibrate", "estimate",
           "measure_peak_bytes", "plan_gpu", "saved_tensor_bytes_meta"]

# (in_channels, image_size, num_classes) of each data set the built-in trainer knows.
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {"digits": (1, 8, 10), "mnist5k": (1, 28, 10),
                                                   "cifar10": (3, 32, 10), "synthetic": (3, 8, 4)}
GIB = 2 ** 30

# The two probe networks of the calibration: small, so the probe takes seconds on a CPU, and
# different enough in activations and parameters that the fitted line is well determined.
_PROBES: tuple[dict[str, Any], ...] = (
    {"res_blocks_1": 1, "res_blocks_2": 1, "res_branches_1": 1, "res_branches_2": 1,
     "filters_0": 8, "widen_factor_1": 1.0, "widen_factor_2": 1.0, "batch_size": 16},
    {"res_blocks_1": 2, "res_blocks_2": 2, "res_branches_1": 2, "res_branches_2": 2,
     "filters_0": 32, "widen_factor_1": 2.0, "widen_factor_2": 2.0, "batch_size": 64},
)
_PROBE_SHAPE = (3, 32, 10)


@dataclass(frozen=True)
class MemoryEstimate:
    """The raw count of one training step, in bytes (before calibration)."""

    params: int  # number of trainable parameters
    weights_bytes: int  # parameters + gradients + SGD momentum buffer
    activation_bytes: int  # tensors autograd saves for the backward pass
    input_bytes: int  # the batch of images
    batch_size: int

    @property
    def raw_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes + self.input_bytes


@dataclass(frozen=True)
class Calibration:
    """``measured = scale * raw + overhead_bytes`` on one device with ``device_bytes`` memory."""

    device: str
    device_bytes: int
    scale: float
    overhead_bytes: int
    probes: tuple[tuple[int, int], ...] = ()  # (raw estimate, measured peak) per probe

    def predict(self, raw_bytes: int) -> int:
        return int(self.scale * raw_bytes + self.overhead_bytes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        return cls(device=str(data["device"]), device_bytes=int(data["device_bytes"]), scale=float(data["scale"]),
                   overhead_bytes=int(data["overhead_bytes"]),
                   probes=tuple(tuple(p) for p in data.get("probes", ())))


@dataclass(frozen=True)
class GpuPlan:
    """What to ask Ray for: ``fraction`` of one GPU, or nothing (``feasible`` False, ``reason``)."""

    feasible: bool
    fraction: float  # of one GPU, a multiple of 1/grid; 0 when infeasible
    need_bytes: int
    device_bytes: int
    reason: str = ""


def estimate(config: Mapping[str, Any], *, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
             batch_size: int | None = None) -> MemoryEstimate:
    """Count one training step of ``config``'s network without building it (closed form, ~0.1 ms).

    The count mirrors what autograd keeps for the backward pass of ``trainers.models`` (checked
    against :func:`saved_tensor_bytes_meta` in the tests): per block, its input (saved by BN)
    and the pre-activated input ``a`` (saved by ReLU, shared by every branch and the shortcut);
    per branch, the first convolution's output (BN's input) and the ReLU output (the second
    convolution's input). Shake-Shake and ShakeDrop save only per-sample weights; the head saves
    its BN input and ReLU output. Parameters are counted from the same shapes.
    """
    spec = arch_spec(config)
    batch = int(round(float(batch_size if batch_size is not None else config.get("batch_size", 32))))
    size, c_in = image_size, spec.stem
    params = 9 * in_channels * spec.stem
    saved = 0  # elements per image
    for stage, (n_blocks, n_branches, width) in enumerate(zip(spec.blocks, spec.branches, spec.widths)):
        for j in range(n_blocks):
            stride = 2 if stage > 0 and j == 0 else 1
            out = (size - 1) // stride + 1
            saved += 2 * c_in * size * size + n_branches * 2 * width * out * out
            params += 2 * c_in + n_branches * (9 * c_in * width + 2 * width + 9 * width * width)
            if stride != 1 or c_in != width:
                params += c_in * width
            size, c_in = out, width
    saved += 2 * c_in * size * size
    params += 2 * c_in + c_in * num_classes + num_classes
    return MemoryEstimate(params=params, weights_bytes=3 * 4 * params, activation_bytes=4 * batch * saved,
                          input_bytes=4 * batch * in_channels * image_size * image_size, batch_size=batch)


def saved_tensor_bytes_meta(config: Mapping[str, Any], *, in_channels: int = 3, image_size: int = 32,
                            num_classes: int = 10, batch_size: int | None = None) -> int:
    """What autograd really saves for one forward pass, counted on the ``meta`` device with
    ``saved_tensors_hooks`` (each tensor once, parameters and tensors under 1 KiB left out): the
    reference :func:`estimate` is tested against. Seconds for a large network, so not used to plan."""
    batch = int(round(float(batch_size if batch_size is not None else config.get("batch_size", 32))))
    saved: dict[int, int] = {}
    with torch.device("meta"):
        model = build_model(config, in_channels, num_classes)
        model.train()
        params = {id(p) for p in model.parameters()}

        def pack(t: torch.Tensor):
            # The same tensor saved by two layers (ReLU's output, the next conv's input) is one
            # allocation: count each object once. Keeping a reference keeps ids unique.
            if id(t) not in params and t.numel() * t.element_size() >= 1024:
                saved.setdefault(id(t), t.numel() * t.element_size())
            return t

        x = torch.empty(batch, in_channels, image_size, image_size)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
    del out
    return sum(saved.values()) - x.numel() * x.element_size() * (id(x) in saved)


# --- measuring ---------------------------------------------------------------------------------

_CPU_PROBE = r"""
import json, sys, torch
from jointsearch.trainers.models import build_model
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
config, shape = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c, s, k = shape
torch.set_num_threads(1)
torch.manual_seed(0)
def steps(config, batch):
    model = build_model(config, c, k)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, c, s, s), torch.randint(0, k, (batch,))
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
# The same layers on a minimal network first: the code pages and one-off buffers of every
# kernel then belong to the baseline, not to the network measured.
steps({**config, **{key: 1 for key in config if key.startswith(("res_blocks_", "res_branches_"))},
       "filters_0": 2}, 2)
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
steps(config, int(config.get("batch_size", 32)))
print(json.dumps({"peak": status("VmHWM") - base}))
"""


def measure_peak_bytes(config: Mapping[str, Any], *, in_channels: int = 3, image_size: int = 32,
                       num_classes: int = 10, device: str = "cpu") -> int:
    """The real peak of two SGD steps of ``config``'s network, in bytes above the idle process.

    On ``cuda`` this is ``max_memory_allocated`` in this process. On the CPU it runs a fresh
    Python process (the allocator of this one may already hold freed memory) and reads the
    peak resident set the kernel recorded after resetting it (``/proc/self/clear_refs``).
    """
    if device.startswith("cuda"):
        dev = torch.device(device)
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        model = build_model(config, in_channels, num_classes).to(dev, memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        batch = int(config.get("batch_size", 32))
        x = torch.randn(batch, in_channels, image_size, image_size, device=dev).contiguous(
            memory_format=torch.channels_last)
        y = torch.randint(0, num_classes, (batch,), device=dev)
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - before
        del model, opt, x, y, loss
        torch.cuda.empty_cache()
        return int(peak)
    return _cpu_probe_peak(_start_cpu_probe(config, (in_channels, image_size, num_classes)))


def _start_cpu_probe(config: Mapping[str, Any], shape: tuple[int, int, int]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CPU_PROBE, json.dumps(dict(config)), json.dumps(list(shape))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _cpu_probe_peak(proc: subprocess.Popen) -> int:
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("memory probe took more than 600 s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {err[-2000:]}")
    return int(json.loads(out.strip().splitlines()[-1])["peak"])


def calibrate(device: str | None = None, device_bytes: int | None = None) -> dict[str, Any]:
    """Fit ``measured = scale * raw + overhead`` on this device from two probe networks.

    ``device``: ``cuda`` when a GPU is visible, else ``cpu``. ``device_bytes``: the memory of one
    device; by default the GPU's total (minus what is already in use, e.g. the CUDA context),
    on the CPU it must be given (a simulated device). Returns :class:`Calibration` as a dict,
    plain data that crosses process boundaries (it runs in a Ray task on a GPU node).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info(torch.device(device))
        context = total - free  # the CUDA context and anything else already resident
        device_bytes = int(device_bytes or total)
    elif device_bytes is None:
        raise ValueError("calibrate on the CPU needs device_bytes (the simulated device's memory)")
    else:
        context = 0
    c, s, k = _PROBE_SHAPE
    raws = [estimate(config, in_channels=c, image_size=s, num_classes=k).raw_bytes for config in _PROBES]
    if device.startswith("cuda"):
        peaks = [measure_peak_bytes(config, in_channels=c, image_size=s, num_classes=k, device=device)
                 for config in _PROBES]
    else:  # one process per probe, each measuring only itself: run them side by side (half the wait)
        probes = [_start_cpu_probe(config, _PROBE_SHAPE) for config in _PROBES]
        try:
            peaks = [_cpu_probe_peak(proc) for proc in probes]
        finally:
            for proc in probes:  # after a failed probe, the other one is not left running
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    points = list(zip(raws, peaks))
    (r1, m1), (r2, m2) = points
    scale = (m2 - m1) / (r2 - r1) if r2 != r1 else m2 / max(r2, 1)
    scale = max(scale, 1.0)  # never predict less than the raw count per byte
    overhead = max(0, int(m1 - scale * r1)) + int(context)
    return Calibration(device=device, device_bytes=int(device_bytes), scale=float(scale),
                       overhead_bytes=overhead, probes=tuple(points)).as_dict()


def plan_gpu(config: Mapping[str, Any], calibration: Mapping[str, Any], *, dataset: str = "cifar10",
             grid: int = 8) -> dict[str, Any]:
    """The fraction of one device ``config`` needs (rounded up to ``1/grid``), or infeasible.

    Returns :class:`GpuPlan` as a dict. Infeasible when the calibrated need exceeds the device:
    such a configuration must never be started (it would only run out of memory).
    """
    cal = Calibration.from_dict(calibration)
    c, s, k = DATASET_SHAPES.get(dataset, _PROBE_SHAPE)
    raw = estimate(config, in_channels=c, image_size=s, num_classes=k)
    need = cal.predict(raw.raw_bytes)
    if need > cal.device_bytes:
        reason = (f"needs {need / GIB:.1f} GiB of accelerator memory ({raw.params / 1e6:.1f}M parameters, "
                  f"batch {raw.batch_size}), one device has {cal.device_bytes / GIB:.1f} GiB")
        return asdict(GpuPlan(False, 0.0, need, cal.device_bytes, reason))
    fraction = min(1.0, math.ceil(need / cal.device_bytes * grid - 1e-9) / grid)
    return asdict(GpuPlan(True, max(fraction, 1.0 / grid), need, cal.device_bytes))
