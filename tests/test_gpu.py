"""The GPU path, on a real CUDA device (marked `gpu`, skipped without one; run with `pytest -m gpu`, or
bench/gpu_check.sh on a lent GPU machine): every model kind trains, a few-shot cell is bit-identical run to
run in deterministic mode, the browser decoder export from CUDA weights equals the CPU one, saliency runs on
the GPU, and the local executor's GPU workers see their device in deterministic mode."""

from __future__ import annotations

import copy
import os

import pytest
import torch

# cuBLAS reads this when CUDA starts in this process (the first test below): deterministic matmuls
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def needs_cuda(test):
    """Marked `gpu` and skipped without CUDA. (The dry-run test at the end is not `gpu`: gpu_check.sh runs
    `-m gpu`, which must not start the script again.)"""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m gpu on one)")
    return pytest.mark.gpu(skip(test))

FAST = dict(dataset="digits", device="cuda", seeds=1, n_generated=[5], recipe={"steps": 25},
            generators={"vae": {"steps": 20, "hidden": 64, "latent_dim": 4},
                        "aae-uniform": {"steps": 20, "hidden": 64, "latent_dim": 4}})
CELL_METHODS = ["none", "mixup", "lsi", "vae-noise"]


@pytest.fixture
def deterministic():
    """core.device.set_deterministic for the test, the process's flags restored after it."""
    from core.device import set_deterministic

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    assert set_deterministic("cuda")
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = before[2:]


def _no_timing(records):
    from core.fewshot import TIMING_KEYS

    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)], ids=["mlp", "conv"])
@needs_cuda
def test_every_model_kind_trains_on_cuda(shape, deterministic):
    from core.config import ModelConfig, TrainConfig
    from core.data import Dataset
    from core.models import build_model, list_models
    from core.train import fit, reconstruction_error

    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, *shape, generator=g)
    data = Dataset(id="gpu-check", x=x, y=torch.randint(0, 10, (256,), generator=g),
                   class_names=[str(i) for i in range(10)])
    for kind in list_models():
        model = build_model(ModelConfig(kind=kind, input_shape=shape, latent_dim=2, hidden=64), seed=0)
        history = fit(model, data, TrainConfig(epochs=2, batch_size=64, lr=3e-3, device="cuda"))
        assert history["device"].startswith("cuda"), kind
        assert next(model.parameters()).device.type == "cuda", kind
        assert all(torch.isfinite(p).all() for p in model.parameters()), kind
        assert reconstruction_error(model, x.cuda()) < 1.0, kind


@needs_cuda
def test_fewshot_cell_on_cuda_is_bit_identical_run_to_run(tmp_path, deterministic):
    from core.fewshot import ExperimentSpec, run_experiment
    from core.fewshot.cells import run_cell
    from core.fewshot.spec import Cell

    spec = ExperimentSpec(**FAST, shots=[2], methods=CELL_METHODS)
    records = run_experiment(spec, tmp_path)                      # trains the generators on the GPU
    assert {r["device"].split(":")[0] for r in records} == {"cuda"}
    for cell in map(Cell._make, spec.cells()):
        a = run_cell(spec, cell, tmp_path, device="cuda")
        b = run_cell(spec, cell, tmp_path, device="cuda")
        assert _no_timing([a]) == _no_timing([b]), cell


@needs_cuda
def test_browser_decoder_export_from_cuda_weights_equals_the_cpu_export(tiny_model):
    from core.webdecoder import decoder_spec

    for kind in ("vae", "aae"):
        for shape in ((1, 8, 8), (1, 28, 28)):
            model = tiny_model(kind, input_shape=shape, latent_dim=3)
            on_gpu = copy.deepcopy(model).cuda()
            assert decoder_spec(on_gpu) == decoder_spec(model), (kind, shape)


@needs_cuda
def test_the_app_placement_computes_on_the_gpu_and_answers_on_the_cpu(tiny_model, digits, deterministic):
    from core.latent import decode_latents, encode_dataset
    from core.placement import Placement, device_of, place

    p = Placement(device="cuda")
    vae = tiny_model("vae")
    app = place(vae, placement=p)
    z = encode_dataset(app, digits.x[:32])
    x = decode_latents(app, z)
    assert z.device.type == x.device.type == "cpu" and len(p) == 1
    assert device_of(p.placed(app._key, vae)).type == "cuda" and device_of(vae).type == "cpu"
    assert torch.allclose(z, encode_dataset(vae, digits.x[:32]), atol=1e-5)
    assert torch.allclose(x, decode_latents(vae, z), atol=1e-5)


@needs_cuda
def test_saliency_on_cuda_is_reproducible_and_matches_the_cpu(digits, deterministic):
    pytest.importorskip("captum")
    from core.models.classifier import build_classifier
    from core.saliency import input_saliency

    model = build_classifier((1, 8, 8), 10, seed=0).eval()
    x = digits.x[:6]
    gpu_model, gx = copy.deepcopy(model).cuda(), x.cuda()
    plain_cpu = input_saliency(model, x, "saliency")
    plain_gpu = input_saliency(gpu_model, gx, "saliency")
    # float32 on two devices (TF32 off: `deterministic`): equal up to rounding, relative to the maps' scale
    assert plain_gpu.device.type == "cuda"
    assert torch.allclose(plain_gpu.cpu(), plain_cpu, rtol=1e-4, atol=1e-5 * float(plain_cpu.abs().max()))
    smooth = [input_saliency(gpu_model, gx, "smoothgrad", generator=torch.Generator(device="cuda").manual_seed(3))
              for _ in range(2)]
    assert torch.equal(smooth[0], smooth[1]) and (smooth[0].flatten(1).sum(1) > 0).all()


@needs_cuda
def test_local_executor_gpu_workers_see_their_device_in_deterministic_mode():
    from core.executor import get_executor, probe
    from core.executor.local import gpu_assignment

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    expected = set(gpu_assignment(visible, torch.cuda.device_count(), 2))
    with get_executor("local", workers=2) as ex:
        infos = [h.result(180) for h in [ex.submit(probe.cuda_info) for _ in range(4)]]
        with pytest.raises(Exception, match="illegal memory access"):
            ex.submit(probe.cuda_error).result(90)
        after = ex.submit(probe.cuda_info).result(180)               # a fresh worker replaced the broken one
    for info in infos + [after]:
        assert info["available"] and info["count"] == 1               # each worker sees exactly one GPU
        assert info["visible"] in expected                            # an entry of the parent's allocation
        assert info["deterministic"] and not info["tf32"] and info["cublas"] == ":4096:8"
    assert len({i["matmul_sum"] for i in infos + [after]}) == 1       # the same numbers on every worker


@needs_cuda
def test_fewshot_run_through_gpu_workers_equals_a_second_run(tmp_path):
    from core.executor import get_executor
    from core.fewshot import ExperimentSpec, run_experiment

    spec = ExperimentSpec(**FAST, shots=[2, 3], methods=["none", "mixup", "lsi"])
    with get_executor("local", workers=2) as ex:
        a = run_experiment(spec, tmp_path / "a", executor=ex)
        b = run_experiment(spec, tmp_path / "b", executor=ex)
    assert {r["device"].split(":")[0] for r in a} == {"cuda"}
    assert _no_timing(a) == _no_timing(b)


@pytest.mark.heavy  # about a minute: trains tiny generators and starts two worker processes
def test_gpu_check_dry_run_works_on_the_cpu():
    """bench/gpu_check.sh --dry-run (runs here, without a GPU): the gpu tests collect and skip or pass, the
    bench runs tiny sizes on the CPU and ends with the one summary line the README figures are read from."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(["bash", str(root / "bench" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                         text=True, timeout=400, cwd=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"gpu_check device=cpu\(dry-run\) epoch_s=[0-9.]+ cell_per_s=[0-9.]+ "
                        r"workers_cell_per_s=[0-9.]+ batched_cell_per_s=\S+ headline_min=[0-9.]+( \S+=\S+)*", last), last
    assert re.search(r"DRY RUN on (the )?CPU", out.stdout)


@needs_cuda
def test_lsi_online_on_cuda_stays_on_the_device_and_matches_the_cpu(tiny_model, deterministic):
    """lsi-online blends every training batch: on a GPU its codes and decoded rows stay there (no per-step
    image round trip through the host), and the rows equal the CPU's for the same index stream."""
    from core.augment import AUGMENTATIONS

    aae = tiny_model("aae", "uniform", latent_dim=4)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(16, 1, 8, 8, generator=gen)
    y = torch.nn.functional.one_hot(torch.arange(16) % 4, 10).float()
    aug = AUGMENTATIONS["lsi-online"]
    x_cpu, y_cpu = aug(x, y, torch.Generator().manual_seed(0), model=aae, n=16)
    x_gpu, y_gpu = aug(x.cuda(), y.cuda(), torch.Generator().manual_seed(0), model=copy.deepcopy(aae).cuda(), n=16)
    assert x_gpu.is_cuda and y_gpu.is_cuda
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, atol=1e-5, rtol=1e-4)
    assert torch.equal(y_gpu.cpu(), y_cpu)


@needs_cuda
def test_fixmatch_cell_on_cuda_is_bit_identical_run_to_run_and_labels_the_pool(tmp_path, deterministic):
    """The consistency baseline on the GPU: its weak/strong views, pseudo-labels and masked loss all on the
    device, the record bit-identical run to run, and the pool pseudo-labelled (a low threshold: 60 steps)."""
    from core.fewshot import ExperimentSpec, run_experiment

    spec = ExperimentSpec(**{**FAST, "recipe": {"steps": 60}}, shots=[2], methods=["fixmatch"],
                          params={"fixmatch": {"threshold": 0.15}})
    a = run_experiment(spec, tmp_path / "a")
    b = run_experiment(spec, tmp_path / "b")
    assert {r["device"].split(":")[0] for r in a} == {"cuda"}
    assert _no_timing(a) == _no_timing(b)
    assert a[0]["pseudo_label_rate"] > 0          # the pool was labelled (and scored: the record holds its accuracy)
    assert a[0]["pseudo_label_accuracy"] == a[0]["pseudo_label_accuracy"]
