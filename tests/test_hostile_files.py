"""Hostile and careless inputs (issue 17): files that claim gigabytes are refused from their headers, an output
path that is not ours is never replaced, and the CLI answers in one line (memory, devices, one-class data)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import core.checkpoints as ck
import core.data as data_module
from core.__main__ import main
from core.checkpoints import CheckpointError, load_checkpoint, load_checkpoint_zip, save_checkpoint
from core.config import ModelConfig
from core.data import DatasetError, fewshot_split, load_dataset
from core.models import build_model, list_models

REPO = Path(__file__).resolve().parent.parent

# A child process measures one call: its peak memory growth (VmHWM after the call, the peak reset to the current
# RSS before it through /proc/self/clear_refs) and its seconds. A fresh process: the test's own allocations and
# import peaks do not count.
PEAK_PROBE = r"""
import json, sys, time
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
{setup}
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    peak_reset = True
except OSError:
    peak_reset = False
before = status("VmRSS")
t0 = time.perf_counter()
try:
    {call}
    outcome = "accepted"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
print(json.dumps({{"outcome": outcome, "seconds": time.perf_counter() - t0,
                  "growth_mb": (status("VmHWM") - before) / 2**20, "peak_reset": peak_reset}}))
"""


def measure(setup: str, call: str) -> dict:
    code = PEAK_PROBE.format(setup=setup, call=call)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_small_and_fast(result: dict, refused_with: str) -> None:
    assert refused_with in result["outcome"], result["outcome"]
    assert result["seconds"] < 5.0, result   # refused from the header: ~0.04 s idle; allocating took 13 s
    if not result["peak_reset"]:
        pytest.skip("this kernel does not let a process reset its peak RSS; memory not measured")
    assert result["growth_mb"] < 100, result


# ----------------------------------------------------------------------------------------- checkpoints (item 1)

def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def _claiming_zip(model: dict, weights: bytes) -> bytes:
    meta = {"format_version": 1, "model": model, "dataset": "probe", "class_names": [],
            "weights_sha256": hashlib.sha256(weights).hexdigest()}
    return _zip({"x/config.json": json.dumps(meta).encode(), "x/model.safetensors": weights})


HUGE = {"kind": "vae", "input_shape": [196608], "hidden": 2048, "latent_dim": 1024, "arch": "mlp"}  # ~3 GB


@pytest.mark.parametrize("weights", [b"", safetensors_bytes({})], ids=["no-bytes", "no-tensors"])
def test_upload_claiming_a_huge_model_is_refused_fast_without_allocating(tmp_path, weights):
    """The 684-byte probe of issue 17 drove the server from 1.5 to 6.1 GB for 13 s."""
    blob = _claiming_zip(HUGE, weights)
    assert len(blob) < 2000
    (tmp_path / "up.zip").write_bytes(blob)
    result = measure(f"from core.checkpoints import load_checkpoint_zip\nblob = open({str(tmp_path / 'up.zip')!r}, "
                     "'rb').read()", "load_checkpoint_zip(blob, device='cpu')")
    assert_small_and_fast(result, "CheckpointError")
    assert "parameters" in result["outcome"] and f"{ck.MAX_PARAMETER_BYTES >> 20} MB" in result["outcome"]


def test_weights_that_disagree_with_the_config_are_refused_before_any_tensor_is_read(tmp_path, monkeypatch):
    model = build_model(ModelConfig(kind="ae", input_shape=(8,), latent_dim=2, hidden=16))
    path = save_checkpoint(tmp_path / "ck", model, dataset_id="wine")
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["hidden"] = 32  # the config now implies other shapes than the weights hold
    (path / "config.json").write_text(json.dumps(meta))

    def never(*a, **k):
        raise AssertionError("allocated before the shapes were checked")

    monkeypatch.setattr(ck, "load_safetensors_bytes", never)
    monkeypatch.setattr(ck, "build_model", never)
    with pytest.raises(CheckpointError, match=r"do not match the model in config.json \(.*has shape \[16, 8\] in "
                                              r"model.safetensors, the config implies \[32, 8\]"):
        load_checkpoint(path)
    # a safetensors file without the model's tensors: named, not loaded
    blob = _claiming_zip(model.config.to_dict(), safetensors_bytes({}))
    with pytest.raises(CheckpointError, match="do not match the model.*missing"):
        load_checkpoint_zip(blob)


@pytest.mark.parametrize("kind", list_models())
@pytest.mark.parametrize("shape, arch", [((1, 28, 28), "conv"), ((1, 28, 28), "mlp"), ((13,), "auto")])
def test_the_meta_skeleton_is_exactly_the_built_model(kind, shape, arch):
    """Validation reads shapes from a model built on the meta device: it must be the model build_model makes."""
    cfg = ModelConfig(kind=kind, input_shape=shape, latent_dim=3, hidden=32, arch=arch)
    built = {k: (tuple(v.shape), v.element_size()) for k, v in build_model(cfg).state_dict().items()}
    assert ck.model_skeleton(cfg) == built
    assert ck.check_model_size(cfg) == sum(int(np.prod(s)) * n for s, n in built.values())


def test_a_model_too_big_to_load_is_not_trained(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ck, "MAX_PARAMETER_BYTES", 1000)
    out = tmp_path / "big"
    assert main(["train", "--dataset", "wine", "--model", "ae", "--hidden", "16", "--epochs", "1",
                 "--out", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "parameters" in errors[0] and "smaller hidden" in errors[0] and not out.exists()


# ----------------------------------------------------------------------------------------- train --out (item 2)

@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: a refused --out must be refused before any epoch runs."""
    import core.training_job

    def trained(*a, **k):
        raise AssertionError("trained before the output path was checked")

    monkeypatch.setattr(core.training_job, "train_task", trained)


TRAIN = ["train", "--dataset", "wine", "--model", "ae", "--latent-dim", "2", "--hidden", "16", "--epochs", "1"]


def test_train_out_refuses_a_folder_that_is_not_a_checkpoint_and_leaves_it(tmp_path, no_training, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    assert main([*TRAIN, "--out", str(folder)]) == 1
    assert main([*TRAIN, "--out", str(folder), "--overwrite"]) == 1  # --overwrite is for our checkpoints only
    err = capsys.readouterr().err
    assert "not a Latent Lab checkpoint" in err and "chapter1.tex" in err
    assert (folder / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"], "nothing moved aside, nothing left behind"


def test_train_out_refuses_an_existing_file_before_training(tmp_path, no_training, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main([*TRAIN, "--out", str(target)]) == 1
    assert "is not a checkpoint folder" in capsys.readouterr().err
    assert target.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_train_out_replaces_our_checkpoint_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "ck"
    assert main([*TRAIN, "--seed", "1", "--out", str(out)]) == 0
    first = load_checkpoint(out).meta["weights_sha256"]
    assert main([*TRAIN, "--seed", "2", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert load_checkpoint(out).meta["weights_sha256"] == first
    assert main([*TRAIN, "--seed", "2", "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out).meta["weights_sha256"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_save_checkpoint_never_replaces_a_foreign_folder(tmp_path, tiny_model):
    """The library guarantee behind --out (the few-shot generators save through it too)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"something": "else"}')
    (folder / "model.safetensors").write_bytes(b"not ours")
    with pytest.raises(CheckpointError, match="not a Latent Lab checkpoint"):
        save_checkpoint(folder, tiny_model("ae", "none"), overwrite=True)
    assert (folder / "model.safetensors").read_bytes() == b"not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"], "no temporary folder left behind"


# ----------------------------------------------------------------------------------------- data files (item 7)

def _write_zeros_member(zf: zipfile.ZipFile, name: str, header_shape, dtype, n_bytes: int) -> None:
    """An .npy member whose header says `header_shape` of `dtype`, followed by n_bytes zeros (streamed)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(header_shape)})
    chunk = bytes(8 << 20)
    with zf.open(name, "w", force_zip64=True) as f:
        f.write(header.getvalue())
        while n_bytes > 0:
            f.write(chunk[:n_bytes])
            n_bytes -= len(chunk)


def _npz(path: Path, x_shape, x_dtype, x_bytes: int, y=np.array([0, 1])) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        _write_zeros_member(zf, "X.npy", x_shape, x_dtype, x_bytes)
        buf = io.BytesIO()
        np.save(buf, y)
        zf.writestr("y.npy", buf.getvalue())
    return path


def test_npz_bomb_is_refused_from_its_headers_with_little_memory(tmp_path):
    """~1 MB on disk, 272 MB of uint8 zeros inside, 1.09 GB as the float32 tensor a Dataset would hold."""
    n = 347_000 * 28 * 28
    bomb = _npz(tmp_path / "bomb.npz", (347_000, 28, 28), np.uint8, n, y=(np.arange(347_000) % 10).astype(np.uint8))
    assert bomb.stat().st_size < 2 << 20 and 4 * n > data_module.MAX_DATA_BYTES
    result = measure("import torch\nfrom core.data import load_dataset", f"load_dataset({'npz:' + str(bomb)!r})")
    assert_small_and_fast(result, "DatasetError")
    assert "unpacks to" in result["outcome"] and "subsample" in result["outcome"]


def test_npz_whose_header_lies_is_refused_before_np_load(tmp_path, monkeypatch):
    """A header claiming 40 GB over a few bytes, and a real array over a lowered cap: np.load never runs."""
    liar = _npz(tmp_path / "liar.npz", (1_000_000, 10_000), np.float32, 64, y=np.arange(1_000_000) % 2)

    def never(*a, **k):
        raise AssertionError("decompressed before the sizes were checked")

    monkeypatch.setattr(data_module.np, "load", never)
    with pytest.raises(DatasetError, match=r"\(X\): unpacks to 10,000,000,000 values"):
        load_dataset(f"npz:{liar}")
    monkeypatch.setattr(data_module, "MAX_DATA_BYTES", 1 << 20)
    honest = _npz(tmp_path / "honest.npz", (4096, 8, 8), np.float32, 4096 * 64 * 4)
    with pytest.raises(DatasetError, match="unpacks to .* up to 1 MB"):
        load_dataset(f"npz:{honest}")


def test_npz_member_that_is_not_an_array_is_named_not_called_a_pickle(tmp_path):
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as zf:
        zf.writestr("X.npy", b"junk, not an .npy header")
        zf.writestr("y.npy", b"junk")
    with pytest.raises(DatasetError, match="X is not a readable array"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


def _idx_gz(path: Path, dims, n_bytes: int) -> Path:
    chunk = bytes(8 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims))
        while n_bytes > 0:
            f.write(chunk[:n_bytes])
            n_bytes -= len(chunk)
    return path


def _idx_folder(folder: Path, image_dims, image_bytes: int, labels: np.ndarray) -> Path:
    folder.mkdir()
    _idx_gz(folder / "train-images-idx3-ubyte.gz", image_dims, image_bytes)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", len(labels)) + labels.astype(np.uint8).tobytes())
    return folder


def test_gzip_idx_bomb_is_refused_from_its_header_with_little_memory(tmp_path):
    """The header says 347,000 images of 28x28 (1.09 GB as float32), and the file holds them: ~1 MB gzipped."""
    n = 347_000 * 28 * 28
    folder = _idx_folder(tmp_path / "bomb", (347_000, 28, 28), n, np.zeros(347_000))
    result = measure("import torch\nfrom core.data import load_dataset", f"load_dataset({'idx:' + str(folder)!r})")
    assert_small_and_fast(result, "DatasetError")
    assert "unpacks to 272,048,000 values" in result["outcome"]


def test_gzip_idx_holding_more_than_its_header_says_is_read_no_further(tmp_path, monkeypatch):
    """A header of 10 images over 64 MB of zeros: the stream is read to the size the header implies, plus one."""
    folder = _idx_folder(tmp_path / "long", (10, 28, 28), 64 << 20, np.arange(10))
    asked = []
    real_read = gzip.GzipFile.read

    def read(self, size=-1):
        asked.append(size)
        return real_read(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    with pytest.raises(DatasetError, match="holds more bytes than that"):
        load_dataset(f"idx:{folder}")
    assert asked and all(0 <= s <= 10 * 28 * 28 + 1 for s in asked), asked


def test_train_on_a_refused_data_file_says_so_in_one_line_without_a_progress_bar(tmp_path, capsys):
    """The bar was drawn before the data was read: a refused .npz left '  0%|  | 0/1 [...]error: ...' on screen."""
    np.savez(tmp_path / "short-y.npz", X=np.zeros((40, 8, 8), np.uint8), y=np.arange(30) % 2)
    assert main([*TRAIN, "--dataset", f"npz:{tmp_path / 'short-y.npz'}", "--out", str(tmp_path / "ck")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: npz:") and err.count("\n") == 1 and "%|" not in err, err
    assert main([*TRAIN, "--out", str(tmp_path / "ck")]) == 0
    assert "100%|" in capsys.readouterr().err  # a training still shows its bar


def test_memory_error_is_one_line(monkeypatch, capsys):
    import core.commands.info as info

    def exhausted(args):
        raise MemoryError()

    monkeypatch.setattr(info, "run", exhausted)
    assert main(["info", "anything"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: not enough memory for info") and err.count("\n") == 1 and "Traceback" not in err

    def exhausted_in_a_worker(args):  # what a job that ran out of memory in a worker process raises here
        from core.executor import JobFailed

        raise JobFailed.from_exception(MemoryError("Unable to allocate 6.2 GiB"))

    monkeypatch.setattr(info, "run", exhausted_in_a_worker)
    assert main(["info", "anything"]) == 1
    err = capsys.readouterr().err
    assert err == "error: not enough memory for info (Unable to allocate 6.2 GiB); use a smaller data set, model " \
                  "or batch size\n"


# ----------------------------------------------------------------------------------------- item 10

def test_unknown_device_names_the_choices_in_one_line(tmp_path, no_training, capsys):
    from core.device import pick_device

    with pytest.raises(ValueError, match="unknown device 'nonsense'; choose one of auto, cpu, cuda"):
        pick_device("nonsense")
    assert main([*TRAIN, "--device", "nonsense", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose one of auto, cpu, cuda" in err and not (tmp_path / "x").exists()


def test_a_data_set_of_one_class_is_refused_alike_from_idx_and_npz(tmp_path):
    """An IDX set whose labels are all 3 ran a few-shot comparison and reported F1 1.000."""
    from core.fewshot.cells import load_splits
    from core.fewshot.spec import ExperimentSpec

    images = np.random.default_rng(0).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    folder = tmp_path / "idx"
    folder.mkdir()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60, 28, 28) + images.tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 60) + bytes([3] * 60))
    np.savez(tmp_path / "zeros.npz", X=images, y=np.zeros(60, dtype=int))
    np.savez(tmp_path / "fives.npz", X=images, y=np.full(60, 5))
    messages = set()
    for spec in (f"idx:{folder}", f"npz:{tmp_path / 'zeros.npz'}", f"npz:{tmp_path / 'fives.npz'}"):
        with pytest.raises(DatasetError, match="at least 2 classes") as e:
            fewshot_split(load_dataset(spec).y, 1, 0)
        messages.add(str(e.value).rsplit(";", 1)[0])
        with pytest.raises(DatasetError, match="at least 2 classes"):
            load_splits(ExperimentSpec(dataset=spec))
    assert len(messages) == 1, messages


# ----------------------------------------------------------------------------------------- run files' modes

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_written_files_honour_the_umask(tmp_path, tiny_model, umask_027):
    """mkstemp/mkdtemp make private files; a run folder on a cluster's shared file system needs the group's."""
    from core.files import atomic_write

    atomic_write(tmp_path / "results.json", "[]")
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o640
    ckpt = save_checkpoint(tmp_path / "ck", tiny_model("ae", "none"))
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in ckpt.iterdir()} == {0o640}
    os.umask(0o022)
    atomic_write(tmp_path / "results.json", b"[1]")
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644


def test_one_huge_image_member_is_refused_from_the_zip_directory_with_little_memory(tmp_path):
    """A 1 MB zip of class folders with one 600 MB 'png' of zeros (under the 1 GiB total cap): refused from its
    directory entry before a byte is read (it used to be read whole: +1.2 GB of server memory, then 'could not
    be read'); the folder form (CLI imagefolder:) is refused from the file's size alike."""
    import zipfile

    bomb = tmp_path / "bomb-images.zip"
    zero = bytes(1 << 20)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("set/a/0.png", b"\x89PNG\r\n\x1a\n")
        zf.writestr("set/b/0.png", b"\x89PNG\r\n\x1a\n")
        with zf.open("set/a/huge.png", "w", force_zip64=True) as fp:
            for _ in range(600):
                fp.write(zero)
    assert bomb.stat().st_size < 2 << 20
    result = measure("from core.user_images import parse_image_zip\n"
                     f"blob = open({str(bomb)!r}, 'rb').read()", "parse_image_zip(blob, 'bomb-images.zip')")
    assert_small_and_fast(result, "DatasetError")
    assert "'set/a/huge.png' is 600 MB unpacked; an image may be at most 64 MB" in result["outcome"], result
    folder = tmp_path / "folder" / "a"
    folder.mkdir(parents=True)
    with open(folder / "huge.png", "wb") as f:
        f.truncate(65 << 20)                                      # sparse: no disk used
    (tmp_path / "folder" / "b").mkdir()
    from core.data import DatasetError
    from core.user_images import parse_image_folder

    with pytest.raises(DatasetError, match="an image may be at most 64 MB"):
        parse_image_folder(tmp_path / "folder")
