"""A user's own data: each kind parses to the arrays it holds, each bad file gets its own message and writes
nothing, the store keeps one copy per content, and an upload's test split is carved once, disjoint and stable."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from core import data_store, user_data, user_images
from core.data import DatasetError, load_dataset


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv(data_store.RUNS_ENV, str(tmp_path / "runs"))
    return tmp_path / "runs"


def nothing_written(runs) -> bool:
    root = runs / "data"
    return not root.exists() or not any(root.iterdir())


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_zip(images: dict[str, np.ndarray], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, arr in images.items():
            zf.writestr(path, png(arr))
        for path, raw in (extra or {}).items():
            zf.writestr(path, raw)
    return buf.getvalue()


def small_images(rng, n=3, shape=(28, 28)):
    return {f"set/{c}/{i}.png": rng.integers(0, 256, shape, dtype=np.uint8) for c in ("cat", "dog") for i in range(n)}


# --- round trips ---------------------------------------------------------------------------------

def test_npz_round_trips_through_the_store(runs):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    arrays = user_data.parse_npz(npz_bytes(X=x, y=y, class_names=np.array(["a", "b", "c", "d"])), "mine.npz")
    manifest = data_store.store(arrays, "mine", owners=["o1"])
    stored_x, stored_y, names = data_store.load_arrays(manifest["sha256"], train=True)
    test_x, test_y, _ = data_store.load_arrays(manifest["sha256"], train=False)
    assert names == ["a", "b", "c", "d"]
    # train and test parts together are exactly the source rows
    together = np.concatenate([stored_x, test_x]).reshape(40, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, x.reshape(40, -1)))
    assert np.bincount(np.concatenate([stored_y, test_y])).tolist() == [10] * 4
    assert manifest["class_counts"] == [10] * 4 and manifest["x_shape"] == [40, 1, 8, 8]
    assert manifest["test_split"]["kind"] == "carved" and manifest["test_split"]["n_test"] == 8
    data = load_dataset(manifest["spec"])
    assert data.id == manifest["spec"] and data.input_shape == (1, 8, 8) and len(data) == 32


def test_csv_round_trips_with_text_labels():
    table = "f1,species,f2\n" + "\n".join(f"{i * 0.5},{'ab'[i % 2]},{-i}" for i in range(10))
    arrays = user_data.parse_csv(table.encode(), "species", "t.csv")
    assert arrays.class_names == ["a", "b"] and arrays.feature_names == ["f1", "f2"]
    np.testing.assert_array_equal(arrays.x, np.array([[i * 0.5, -i] for i in range(10)], dtype=np.float32))
    np.testing.assert_array_equal(arrays.y, np.arange(10) % 2)


def test_a_tables_feature_names_reach_its_dataset_stored_or_read_from_the_cli(tmp_path):
    """The bars a table model's decoder paints are labelled with these names (ui.components.latent_decoder)."""
    table = "width,species,height\n" + "\n".join(f"{i * 0.5},{'ab'[i % 2]},{-i}" for i in range(10))
    manifest = data_store.store(user_data.parse_csv(table.encode(), "species", "t.csv"), "t", owners=["o"])
    for train in (True, False):
        assert data_store.load(manifest["spec"], train=train).feature_names == ["width", "height"]
    (tmp_path / "t.csv").write_text(table)
    data = load_dataset(f"csv:{tmp_path / 't.csv'}:species")
    assert data.feature_names == ["width", "height"]
    assert data.subset([0, 1]).feature_names == ["width", "height"]


def test_image_zip_round_trips_within_one_level():
    rng = np.random.default_rng(1)
    images = small_images(rng)
    arrays = user_images.parse_image_zip(image_zip(images), "pets.zip", "grey", 28)
    assert arrays.class_names == ["cat", "dog"] and arrays.x.shape == (6, 1, 28, 28)
    for i, (path, img) in enumerate(sorted(images.items())):   # no resize: the pixels themselves
        row = [j for j, p in enumerate(sorted(images)) if p == path][0]
        assert np.abs(arrays.x[row, 0].astype(int) - img.astype(int)).max() <= 1
    rgb = user_images.parse_image_zip(image_zip(images), "pets.zip", "rgb", 16)
    assert rgb.x.shape == (6, 3, 16, 16) and rgb.how["size"] == 16


def test_idx_pair_round_trips_gzipped():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    images = gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 6, 5, 5) + x.tobytes())
    labels = b"\0\0\x08\x01" + struct.pack(">I", 6) + y.tobytes()
    arrays = user_data.parse_idx_pair(images, labels, "pair")
    np.testing.assert_array_equal(arrays.x[:, 0], x)
    np.testing.assert_array_equal(arrays.y, y)


def test_cli_specs_read_the_same_files(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "pets"
    for path, img in small_images(rng).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(png(img))
    data = load_dataset(f"imagefolder:{folder}")
    assert data.input_shape == (1, 28, 28) and data.class_names == ["cat", "dog"] and float(data.x.max()) <= 1
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n" + "\n".join(f"{i},{i * i},{i % 2}" for i in range(8)))
    table = load_dataset(f"csv:{csv}:label")
    assert table.input_shape == (2,) and table.class_names == ["0", "1"]
    with pytest.raises(DatasetError, match="no column named 'nope'"):
        load_dataset(f"csv:{csv}:nope")


def test_cli_imagefolder_options_match_the_browser_upload(tmp_path, capsys):
    """imagefolder:PATH[:grey|rgb[:SIZE]] reads a folder (or a .zip) exactly as the page's upload with the same
    options does; bad options get the upload's own messages; the train command says so in its help."""
    rng = np.random.default_rng(4)
    images = {p: rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for p in small_images(rng, shape=(20, 20))}
    folder = tmp_path / "pets"
    for path, img in images.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(png(img))
    archive = tmp_path / "pets.zip"
    archive.write_bytes(image_zip(images))
    upload = user_images.parse_image_zip(archive.read_bytes(), "pets.zip", "rgb", 12)
    for spec in (f"imagefolder:{folder}:rgb:12", f"imagefolder:{archive}:RGB:12"):
        data = load_dataset(spec)
        assert data.input_shape == (3, 12, 12) and data.id == spec
        np.testing.assert_allclose(data.x.numpy(), upload.x / 255.0, atol=1e-7)
    assert load_dataset(f"imagefolder:{folder}:rgb").input_shape == (3, 32, 32)   # the page's RGB default
    assert load_dataset(f"imagefolder:{folder}:grey").input_shape == (1, 28, 28)
    assert load_dataset(f"imagefolder:{folder}").input_shape == (1, 28, 28)
    odd = tmp_path / "a:grey"   # a folder whose own name looks like an option is read as named
    odd.mkdir()
    for path, img in images.items():
        (odd / path).parent.mkdir(parents=True, exist_ok=True)
        (odd / path).write_bytes(png(img))
    assert load_dataset(f"imagefolder:{odd}").input_shape == (1, 28, 28)
    assert load_dataset(f"imagefolder:{odd}:rgb:8").input_shape == (3, 8, 8)
    for spec, match in ((f"imagefolder:{folder}:rgb:999", "image size must be 4 to 256"),
                        (f"imagefolder:{folder}:rgb:2", "image size must be 4 to 256"),
                        (f"imagefolder:{folder}:rgb:big", "not a whole number"),
                        (f"imagefolder:{folder}:64", "give the colour before the size"),
                        (f"imagefolder:{folder}:sepia:64", "'sepia' is neither grey nor rgb"),
                        (f"imagefolder:{tmp_path}/nope:rgb:16", "no such folder")):
        with pytest.raises(DatasetError, match=match):
            load_dataset(spec)
    with pytest.raises(DatasetError, match="image size must be 4 to 256"):
        user_images.parse_image_zip(archive.read_bytes(), "pets.zip", "rgb", 999)   # the same words as the page's
    from core.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "imagefolder:PATH[:grey|rgb[:SIZE]]" in capsys.readouterr().out.replace("\n", " ")


# --- bad inputs: each its own message, nothing written ---------------------------------------------

def _refused(parse, match, runs):
    with pytest.raises(DatasetError, match=match):
        data_store.store(parse(), "x", owners=["o"])
    assert nothing_written(runs)


def test_traversal_member_is_refused(runs):
    zipped = image_zip(small_images(np.random.default_rng(0)), {"../evil/1.png": b"x"})
    _refused(lambda: user_images.parse_image_zip(zipped, "z.zip"), "outside the archive", runs)


def test_symlink_member_is_refused(runs):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p, img in small_images(np.random.default_rng(0)).items():
            zf.writestr(p, png(img))
        info = zipfile.ZipInfo("set/cat/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    _refused(lambda: user_images.parse_image_zip(buf.getvalue(), "z.zip"), "symbolic link", runs)


def test_zip_bomb_is_refused_from_its_directory(runs, monkeypatch):
    monkeypatch.setattr(user_images, "MAX_ZIP_UNPACKED", 1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("set/cat/big.png", b"\0" * (2 << 20))   # 2 MB of zeros: a few kB compressed
    assert len(buf.getvalue()) < 20_000
    _refused(lambda: user_images.parse_image_zip(buf.getvalue(), "z.zip"), "zip bomb", runs)


def test_member_that_lies_about_its_size_is_refused_while_reading(runs):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p, img in small_images(np.random.default_rng(0)).items():
            zf.writestr(p, png(img))
    data = bytearray(buf.getvalue())
    first = data.find(b"PK\x01\x02")                  # the central directory's first entry
    struct.pack_into("<I", data, first + 24, 10)        # claims 10 bytes unpacked: passes the directory check
    _refused(lambda: user_images.parse_image_zip(bytes(data), "z.zip"), "set/cat/0.png' does not match the size", runs)


def test_undecodable_images_are_named(runs):
    zipped = image_zip(small_images(np.random.default_rng(0)), {"set/dog/broken.png": b"not a png"})
    _refused(lambda: user_images.parse_image_zip(zipped, "z.zip"), r"set/dog/broken.png cannot be decoded", runs)


def test_csv_text_in_a_feature_column(runs):
    table = b"f1,f2,label\n1,2,a\n3,oops,b\n5,6,a\n7,8,b\n"
    _refused(lambda: user_data.parse_csv(table, "label", "t.csv"), r"column 'f2' holds text \('oops' in row 2\)", runs)


def test_csv_one_class(runs):
    table = b"f1,label\n1,a\n2,a\n3,a\n"
    _refused(lambda: user_data.parse_csv(table, "label", "t.csv"), "at least 2 classes", runs)


def test_csv_nan(runs):
    table = b"f1,f2,label\n1,2,a\n3,nan,b\n5,6,a\n7,8,b\n"
    _refused(lambda: user_data.parse_csv(table, "label", "t.csv"), "column 'f2' is empty, NaN or infinite in row 2", runs)


def test_class_with_one_example(runs):
    table = b"f1,label\n1,a\n2,a\n3,b\n"
    _refused(lambda: user_data.parse_csv(table, "label", "t.csv"), "'b' have only 1 example", runs)


def test_npz_with_a_pickle(runs):
    raw = npz_bytes(X=np.array([object(), 1], dtype=object), y=np.array([0, 1]))
    _refused(lambda: user_data.parse_npz(raw, "p.npz"), "object array", runs)


def test_npz_nan_and_missing_arrays(runs):
    x = np.ones((4, 3), dtype=np.float32)
    x[2, 1] = np.nan
    _refused(lambda: user_data.parse_npz(npz_bytes(X=x, y=np.array([0, 0, 1, 1])), "n.npz"), "NaN .* row 2", runs)
    _refused(lambda: user_data.parse_npz(npz_bytes(A=x), "n.npz"), "needs arrays named 'X' and 'y'", runs)


def test_row_cap(runs, monkeypatch):
    monkeypatch.setattr(user_data, "MAX_ROWS", 5)
    raw = npz_bytes(X=np.zeros((6, 2), np.float32), y=np.array([0, 0, 0, 1, 1, 1]))
    _refused(lambda: user_data.parse_npz(raw, "n.npz"), "over the 5 limit", runs)


# --- the store -----------------------------------------------------------------------------------

def test_same_content_is_stored_once_and_owners_join(runs):
    raw = npz_bytes(X=np.arange(20, dtype=np.float32).reshape(10, 2), y=np.arange(10) % 2)
    a = data_store.store(user_data.parse_npz(raw, "a.npz"), "a", owners=["o1"])
    b = data_store.store(user_data.parse_npz(raw, "b.npz"), "b", owners=["o2"])
    assert a["sha256"] == b["sha256"] and len(list((runs / "data").iterdir())) == 1
    assert data_store.read_manifest(a["sha256"])["owners"] == ["o1", "o2"]
    assert not data_store.delete(a["sha256"], {"o1"})          # o2 still has it
    assert data_store.delete(a["sha256"], {"o2"})
    assert nothing_written(runs)
    with pytest.raises(DatasetError, match="no such uploaded data set"):
        load_dataset(a["spec"])


def test_owner_is_stored_as_a_hash_not_the_token(runs):
    raw = npz_bytes(X=np.arange(20, dtype=np.float32).reshape(10, 2), y=np.arange(10) % 2)
    m = data_store.store(user_data.parse_npz(raw, "a.npz"), "a", owners=[data_store.owner_hash("browser:SECRET")])
    assert "SECRET" not in (runs / "data" / m["sha256"] / "manifest.json").read_text()


def test_bad_upload_spec_is_refused():
    with pytest.raises(DatasetError, match="not a data set id"):
        load_dataset("upload:../../etc")


def test_carved_split_is_disjoint_stratified_and_stable():
    y = np.repeat(np.arange(3), [10, 20, 5])
    a, b = data_store.carve_test_split(y), data_store.carve_test_split(y)
    np.testing.assert_array_equal(a, b)
    assert np.bincount(y[a]).tolist() == [2, 4, 1]
    tiny = data_store.carve_test_split(np.array([0, 0, 1, 1]))
    assert np.bincount(np.array([0, 0, 1, 1])[tiny]).tolist() == [1, 1]


def test_vector_test_part_uses_the_train_statistics(runs):
    rng = np.random.default_rng(4)
    x = rng.normal(5, 3, (50, 4)).astype(np.float32)
    m = data_store.store(user_data.parse_npz(npz_bytes(X=x, y=np.arange(50) % 2), "v.npz"), "v", ["o"])
    train, test = load_dataset(m["spec"]), load_dataset(m["spec"], train=False)
    assert abs(float(train.x.mean())) < 1e-5 and len(train) + len(test) == 50
    tx, _, _ = data_store.load_arrays(m["sha256"], train=True)
    sx, _, _ = data_store.load_arrays(m["sha256"], train=False)
    np.testing.assert_allclose(test.x.numpy(), (sx - tx.mean(0)) / tx.std(0), rtol=1e-4, atol=1e-5)


def test_fewshot_runner_uses_the_uploads_carved_test_split(runs):
    """Shots and pool come from the upload's train part; its test set is the stored carved part: disjoint from
    both and the same in every run (every process reads the same stored rows)."""
    import torch

    from core.data import fewshot_split
    from core.fewshot import cells
    from core.fewshot.spec import ExperimentSpec

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (120, 1, 6, 6), dtype=np.uint8)      # distinct random images: rows are tellable apart
    m = data_store.store(user_data.parse_npz(npz_bytes(X=x, y=np.arange(120) % 3), "f.npz"), "f", ["o"])
    spec = ExperimentSpec(dataset=m["spec"], shots=[2], methods=["none"], seeds=1)
    cells._splits.cache_clear()
    splits = cells.load_splits(spec)

    def key(data) -> set[bytes]:   # each row's pixels, as the uint8 bytes stored
        return {bytes(r) for r in (data.x * 255).round().to(torch.uint8).reshape(len(data), -1).numpy()}

    test_rows = key(splits.test)
    stored_test = {bytes(r) for r in data_store.load_arrays(m["sha256"], train=False)[0].reshape(-1, 36)}
    assert test_rows == stored_test and len(test_rows) == m["test_split"]["n_test"]
    shots, pool = fewshot_split(splits.train.y, 2, seed=0)
    assert not test_rows & key(splits.train.subset(shots)) and not test_rows & key(splits.train.subset(pool))
    assert not test_rows & key(splits.validation)
    cells._splits.cache_clear()
    assert key(cells.load_splits(spec).test) == test_rows        # the same across runs
